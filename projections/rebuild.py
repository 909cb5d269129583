"""Rebuilding a projection from the whole log while ingestion and the live projector go on.

The new table is built beside the live one (`<table>__rebuild`, the same definition), filled from the
first event in bounded batches, caught up to the head, and swapped in by one short transaction that
holds the projection's checkpoint row, so the live projector pauses for exactly that long. Readers
see the old table until the swap commits and the new one after: never an empty or half-built one.
A crash part-way leaves the live table untouched; running the rebuild again starts it over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from projections.model import Projection
from projections.runner import head_position, project_batch
from projections.store import quote
from service.db import connect

__all__ = ["Progress", "build_shadow", "rebuild"]

SHADOW_SUFFIX = "__rebuild"
_REPLACED_SUFFIX = "__replaced"

Progress = Callable[[str, int, int], None]
"""Called with (projection name, position reached, head position) after each batch."""

_SWAP_ATTEMPTS = 5
# The swap needs a moment of exclusive access to the live table: a long query there makes the swap
# give up and try again, rather than queue every reader behind it.
_SWAP_LOCK_TIMEOUT = "3s"


async def build_shadow(
    conn: asyncpg.Connection,
    projection: Projection,
    *,
    region: str,
    batch_size: int,
    progress: Progress | None,
) -> tuple[str, int]:
    """Create the shadow table and replay the log into it until it is within one batch of the head.
    Returns the shadow's name and the position it reached."""
    live = projection.table.name
    shadow = live + SHADOW_SUFFIX
    await conn.execute(
        f"DROP TABLE IF EXISTS {quote(shadow)};"
        f"CREATE TABLE {quote(shadow)} (LIKE {quote(live)} INCLUDING ALL)"
    )
    position = 0
    while True:
        head = await head_position(conn)
        if head - position <= batch_size:
            return shadow, position
        async with conn.transaction():
            position = await project_batch(
                conn, projection, shadow, after=position, upto=head, limit=batch_size, region=region
            )
        if progress is not None:
            progress(projection.name, position, head)


async def rebuild(
    database_url: str,
    projection: Projection,
    *,
    region: str,
    batch_size: int = 5000,
    progress: Progress | None = None,
) -> int:
    """Rebuild `projection`'s table from the log; returns the position the new table is at."""
    async with connect(database_url) as conn:
        shadow, position = await build_shadow(
            conn, projection, region=region, batch_size=batch_size, progress=progress
        )
        for attempt in range(1, _SWAP_ATTEMPTS + 1):
            try:
                position = await _swap(
                    conn, projection, shadow, position, region=region, batch_size=batch_size
                )
                break
            except asyncpg.LockNotAvailableError:
                if attempt == _SWAP_ATTEMPTS:
                    raise
                await asyncio.sleep(attempt)
        if progress is not None:
            progress(projection.name, position, position)
        return position


async def _swap(
    conn: asyncpg.Connection,
    projection: Projection,
    shadow: str,
    position: int,
    *,
    region: str,
    batch_size: int,
) -> int:
    live = projection.table.name
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{_SWAP_LOCK_TIMEOUT}'")
        # Holding the checkpoint row keeps the live projector from writing this table until we commit.
        await conn.execute("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE", projection.name)
        head = await head_position(conn)
        while position < head:
            position = await project_batch(
                conn, projection, shadow, after=position, upto=head, limit=batch_size, region=region
            )
        grants = await conn.fetch(
            """
            SELECT grantee, string_agg(privilege_type, ', ') AS privileges
            FROM information_schema.role_table_grants
            WHERE table_schema = current_schema() AND table_name = $1
              AND grantee <> (SELECT tableowner FROM pg_tables
                              WHERE schemaname = current_schema() AND tablename = $1)
            GROUP BY grantee
            """,
            live,
        )
        live_names = {shape: name for name, shape in await _indexes(conn, live)}
        replaced = live + _REPLACED_SUFFIX
        await conn.execute(
            f"ALTER TABLE {quote(live)} RENAME TO {quote(replaced)};"
            f"ALTER TABLE {quote(shadow)} RENAME TO {quote(live)};"
            f"DROP TABLE {quote(replaced)}"
        )
        # LIKE ... INCLUDING ALL gave the indexes names of its own; give them the live table's back, so
        # that migrations written against those names keep working after any number of rebuilds.
        for name, shape in await _indexes(conn, live):
            if (wanted := live_names.get(shape)) is not None and wanted != name:
                await conn.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(wanted)}")
        for grant in grants:
            grantee = "PUBLIC" if grant["grantee"] == "PUBLIC" else quote(grant["grantee"])
            await conn.execute(f"GRANT {grant['privileges']} ON {quote(live)} TO {grantee}")
        await conn.execute(
            """
            UPDATE projection_checkpoints
            SET position = $2, version = $3, error = NULL, error_position = NULL, updated_at = now()
            WHERE name = $1
            """,
            projection.name,
            position,
            projection.version,
        )
    return position


async def _indexes(conn: asyncpg.Connection, table: str) -> list[tuple[str, tuple[bool, str]]]:
    """(name, shape) of each index of `table`; the shape (unique?, method and columns) is the same for
    an index and its copy made by LIKE ... INCLUDING ALL."""
    rows = await conn.fetch(
        """
        SELECT c.relname AS name, i.indisunique AS is_unique,
               split_part(pg_get_indexdef(i.indexrelid), ' USING ', 2) AS definition
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = to_regclass($1)
        """,
        quote(table),
    )
    return [(row["name"], (row["is_unique"], row["definition"])) for row in rows]
