"""Rebuilding projections from the whole log while ingestion and the live projector go on.

Each new table is built beside the live one (`<table>__rebuild`, the same definition), filled from the
first event by one replay of the log for all the projections rebuilt together (projections/replay.py),
caught up to the head, and swapped in by one short transaction that holds the projection's checkpoint
row, so the live projector pauses for exactly that long. Readers see the old table until the swap
commits and the new one after: never an empty or half-built one. A crash part-way leaves the live
tables untouched; running the rebuild again starts it over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import asyncpg

from projections.model import Projection
from projections.rebuild_progress import published_progress
from projections.replay import Replay
from projections.runner import head_position, project_batch
from projections.store import quote
from service.db import connect

__all__ = ["DEFAULT_BATCH_SIZE", "Progress", "build_shadow", "rebuild", "rebuild_many"]

_log = logging.getLogger("mightycall.rebuild")

SHADOW_SUFFIX = "__rebuild"
_REPLACED_SUFFIX = "__replaced"

DEFAULT_BATCH_SIZE = 20_000
"""Events per batch of the replay: fewer round trips per event, against memory for one batch."""

Progress = Callable[[str, int, int], None]
"""Called with (projection names, position reached, head position) after each batch."""

_SWAP_ATTEMPTS = 5
# The swap needs a moment of exclusive access to the live table: a long query there makes the swap
# give up and try again, rather than queue every reader behind it.
_SWAP_LOCK_TIMEOUT = "3s"
# The swap applies what is left with the live projector's batches, while the live projector waits: the
# replay catches up until at most this many events are left for it.
_SWAP_BACKLOG = 1000
# Indexes built on a filled shadow can take longer than the connection's command timeout.
_INDEX_BUILD_TIMEOUT_S = 3600.0

# Indexes that neither back a constraint nor are unique are built after the shadow is filled, which is
# cheaper than updating them row by row. The others stay: the upsert needs the unique key, and a
# duplicate is caught as it is written.
_DEFERRED_INDEXES = """
    SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass($1) AND NOT i.indisunique
      AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
"""


async def _create_shadow(conn: asyncpg.Connection, projection: Projection) -> tuple[str, list[str]]:
    """Create the empty shadow table; returns its name and the indexes still to build once it is filled."""
    live = projection.table.name
    shadow = live + SHADOW_SUFFIX
    await conn.execute(
        f"DROP TABLE IF EXISTS {quote(shadow)};"
        f"CREATE TABLE {quote(shadow)} (LIKE {quote(live)} INCLUDING ALL)"
    )
    deferred = await conn.fetch(_DEFERRED_INDEXES, quote(shadow))
    for index in deferred:
        await conn.execute(f"DROP INDEX {quote(index['name'])}")
    return shadow, [index["definition"] for index in deferred]


async def _fill(
    reader: asyncpg.Connection,
    writer: asyncpg.Connection,
    shadows: list[tuple[Projection, str, list[str]]],
    *,
    region: str,
    batch_size: int,
    progress: Progress | None,
    publish: Callable[[int, int], None] | None = None,
) -> int:
    """Replay the log into the new shadow tables, build their deferred indexes, and catch up until the
    head is near; returns the position reached."""
    replay = Replay(
        [(projection, shadow) for projection, shadow, _ in shadows], region=region, batch_size=batch_size
    )
    names = ", ".join(projection.name for projection, _, _ in shadows)
    position = 0
    indexed = False
    while True:
        head = await head_position(writer)
        if indexed and head - position <= min(batch_size, _SWAP_BACKLOG):
            return position
        position = await replay.run(
            reader,
            writer,
            after=position,
            upto=head,
            progress=_Step(names, head, position, progress, publish),
        )
        if not indexed:
            for _, _, definitions in shadows:
                for definition in definitions:
                    await writer.execute(definition, timeout=_INDEX_BUILD_TIMEOUT_S)
            indexed = True


class _Step:
    """Called after each batch of a replay: one log line per batch, and the caller's progress report."""

    def __init__(
        self,
        names: str,
        head: int,
        start: int,
        progress: Progress | None,
        publish: Callable[[int, int], None] | None,
    ) -> None:
        self._names, self._head, self._progress, self._publish = names, head, progress, publish
        self._last, self._last_at = start, time.perf_counter()

    def __call__(self, reached: int) -> None:
        now = time.perf_counter()
        _log.info(
            "rebuild batch",
            extra={
                "fields": {
                    "projections": self._names,
                    "reached": reached,
                    "head": self._head,
                    "events": reached - self._last,
                    "events_per_s": round((reached - self._last) / max(now - self._last_at, 1e-9)),
                }
            },
        )
        self._last, self._last_at = reached, now
        if self._publish is not None:
            self._publish(reached, self._head)
        if self._progress is not None:
            self._progress(self._names, reached, self._head)


async def build_shadow(
    conn: asyncpg.Connection,
    projection: Projection,
    *,
    region: str,
    batch_size: int,
    progress: Progress | None,
) -> tuple[str, int]:
    """Create the shadow table and replay the log into it (on `conn` alone) until it is near the head.
    Returns the shadow's name and the position it reached."""
    shadow, deferred = await _create_shadow(conn, projection)
    position = await _fill(
        conn, conn, [(projection, shadow, deferred)], region=region, batch_size=batch_size, progress=progress
    )
    return shadow, position


async def rebuild_many(
    database_url: str,
    projections: Iterable[Projection],
    *,
    region: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Rebuild the projections' tables with one replay of the log; returns the position each new table
    is at, by projection name."""
    chosen = list({projection.name: projection for projection in projections}.values())
    positions = {}
    async with connect(database_url) as writer, connect(database_url) as reader:
        shadows = [(projection, *await _create_shadow(writer, projection)) for projection in chosen]
        async with published_progress(database_url, [projection.name for projection in chosen]) as publish:
            position = await _fill(
                reader,
                writer,
                shadows,
                region=region,
                batch_size=batch_size,
                progress=progress,
                publish=publish,
            )
        for projection, shadow, _ in shadows:
            for attempt in range(1, _SWAP_ATTEMPTS + 1):
                try:
                    positions[projection.name] = await _swap(
                        writer, projection, shadow, position, region=region, batch_size=batch_size
                    )
                    break
                except asyncpg.LockNotAvailableError:
                    if attempt == _SWAP_ATTEMPTS:
                        raise
                    await asyncio.sleep(attempt)
            _log.info(
                "rebuild swapped in",
                extra={"fields": {"projection": projection.name, "position": positions[projection.name]}},
            )
            if progress is not None:
                progress(projection.name, positions[projection.name], positions[projection.name])
    return positions


async def rebuild(
    database_url: str,
    projection: Projection,
    *,
    region: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> int:
    """Rebuild `projection`'s table from the log; returns the position the new table is at."""
    positions = await rebuild_many(
        database_url, [projection], region=region, batch_size=batch_size, progress=progress
    )
    return positions[projection.name]


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
        await conn.execute("DELETE FROM rebuild_progress WHERE name = $1", projection.name)
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
