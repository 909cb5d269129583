"""Where each projection stands: what `projections status`, `serve` and `/ready` report."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from projections.registry import PROJECTIONS
from projections.runner import head_position

__all__ = ["ProjectionStatus", "projection_statuses"]


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    version: int
    """The code's version of the projection."""
    table_version: int
    """The version that built the table."""
    position: int
    head: int
    error: str | None
    error_position: int | None

    @property
    def lag(self) -> int:
        return self.head - self.position

    @property
    def rebuild_due(self) -> bool:
        return self.table_version < self.version


async def projection_statuses(conn: asyncpg.Connection) -> list[ProjectionStatus]:
    head = await head_position(conn)
    rows = {
        row["name"]: row
        for row in await conn.fetch(
            "SELECT name, version, position, error, error_position FROM projection_checkpoints"
        )
    }
    return [
        ProjectionStatus(
            name=name,
            version=projection.version,
            table_version=rows[name]["version"],
            position=rows[name]["position"],
            head=head,
            error=rows[name]["error"],
            error_position=rows[name]["error_position"],
        )
        for name, projection in PROJECTIONS.items()
        if name in rows
    ]
