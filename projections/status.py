"""Where each projection stands: what `projections status`, `serve` and `/ready/projections` report."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from projections.rebuild.rebuild import SHADOW_SUFFIX
from projections.registry import PROJECTIONS
from projections.runner import head_position

_LAGS = """
    SELECT c.name, (SELECT position FROM event_log_head) - c.position AS events,
           extract(epoch FROM now() - (SELECT received_at FROM event_log WHERE id = c.position + 1))
               AS seconds,
           c.error IS NOT NULL AS stopped, c.error_position,
           to_regclass(quote_ident(t.shadow)) IS NOT NULL AS rebuilding,
           r.position AS rebuild_position, r.head AS rebuild_head
    FROM projection_checkpoints c JOIN unnest($1::text[], $2::text[]) AS t (name, shadow) USING (name)
    LEFT JOIN rebuild_progress r USING (name)
    ORDER BY c.name
"""

__all__ = ["ProjectionLag", "ProjectionStatus", "projection_lags", "projection_statuses"]


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
            # Nothing has been projected at position 0: the code's version is the one that builds the
            # table, whichever version the migration that made the checkpoint named.
            table_version=rows[name]["version"] if rows[name]["position"] > 0 else projection.version,
            position=rows[name]["position"],
            head=head,
            error=rows[name]["error"],
            error_position=rows[name]["error_position"],
        )
        for name, projection in PROJECTIONS.items()
        if name in rows
    ]


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    """How far behind the log a projection's live table is (`/metrics`, `/ready/projections`)."""

    name: str
    events: int
    """Events in the log not applied yet."""
    seconds: float
    """Age of the oldest event not applied yet; 0 when caught up."""
    stopped: bool
    error_position: int | None
    """The event it stopped on, when it stopped on an error."""
    rebuilding: bool
    """A rebuild's shadow table exists."""
    rebuild_position: int | None
    """How far the running rebuild has replayed the log (None: no rebuild has reported)."""
    rebuild_head: int | None
    """The head it is replaying up to."""


async def projection_lags(pool: asyncpg.Pool | asyncpg.Connection) -> list[ProjectionLag]:
    names = list(PROJECTIONS)
    shadows = [projection.table.name + SHADOW_SUFFIX for projection in PROJECTIONS.values()]
    return [
        ProjectionLag(
            name=row["name"],
            events=row["events"],
            # The clock of the database and of the server that stamped received_at may disagree a little.
            seconds=max(0.0, float(row["seconds"] or 0)),
            stopped=row["stopped"],
            error_position=row["error_position"],
            rebuilding=row["rebuilding"],
            rebuild_position=row["rebuild_position"],
            rebuild_head=row["rebuild_head"],
        )
        for row in await pool.fetch(_LAGS, names, shadows)
    ]
