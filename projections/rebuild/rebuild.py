"""Rebuilding projections from the whole log while ingestion and the live projector go on.

Each new table is built beside the live one (`<table>__rebuild`, the same definition), filled from the
first event by replays of the log (projections/rebuild/fill.py), caught up to the head, and swapped in by one
short transaction that holds the projection's checkpoint row, so the live projector pauses for exactly
that long. Readers see the old table until the swap commits and the new one after: never an empty or
half-built one. A crash part-way leaves the live tables untouched; running the rebuild again starts it
over. One rebuild of a projection runs at a time (projections/rebuild/lock.py), and the swap carries
over what surrounds the table: grants, policies, publications, views and the rest (surroundings.py);
what it could not carry over is refused before any work (rebuild_blockers.py).

Projections that read the same kinds of event are filled by one replay, which reads and decodes each
event once for all of them; each of the others by a replay of its own. The replays run in up to one
process per core, the next one starting wherever one finishes: a replay is mostly Python, which runs
one thread at a time (projections/rebuild/fill_process.py). A small log is replayed in this process
alone: its replays are over before a second process would have started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence

import asyncpg

from projections.model import Projection
from projections.rebuild.blockers import refuse_what_cannot_be_carried_over
from projections.rebuild.fill import SWAP_BACKLOG, Shadow, fill
from projections.rebuild.fill_process import FillProcess
from projections.rebuild.lock import RebuildRunning, holding_rebuild_locks, lock_lost, still_held
from projections.rebuild.progress import published_progress
from projections.rebuild.surroundings import carry_over, read_surroundings
from projections.registry import PROJECTIONS
from projections.runner import head_position, project_batch
from projections.store import quote
from service.database.pool import connect

__all__ = ["DEFAULT_BATCH_SIZE", "Progress", "RebuildRunning", "build_shadow", "rebuild", "rebuild_many"]

_log = logging.getLogger("mightycall.rebuild")

SHADOW_SUFFIX = "__rebuild"
_REPLACED_SUFFIX = "__replaced"

DEFAULT_BATCH_SIZE = 6_000
"""Events per batch of each replay: fewer round trips per event, against memory. Chosen so that a
rebuild of all four projections in two processes stays under the 200 MB it is held to on `make bench`'s
log with room to spare; a larger batch was faster and too close to that bound (docs/performance.md)."""

LOG_WORTH_A_PROCESS = 20_000
"""Below this many events, a rebuild replays in this process alone: a child process's start (its
interpreter and imports) costs about what replaying this many events does, and the replays of a smaller
log are over before a second process would have paid for itself."""

Progress = Callable[[str, int, int], None]
"""Called with (projection names, position reached, head position) after each batch."""

_SWAP_ATTEMPTS = 5
# The swap needs a moment of exclusive access to the live table: a long query there makes the swap
# give up and try again, rather than queue every reader behind it.
_SWAP_LOCK_TIMEOUT = "3s"

# Indexes that neither back a constraint nor are unique are built after the shadow is filled, which is
# cheaper than updating them row by row. The others stay: the upsert needs the unique key, and a
# duplicate is caught as it is written.
_DEFERRED_INDEXES = """
    SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = to_regclass($1) AND NOT i.indisunique
      AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
"""


async def _create_shadow(conn: asyncpg.Connection, projection: Projection) -> Shadow:
    """Create the empty shadow table, without the indexes to build once it is filled."""
    live = projection.table.name
    shadow = live + SHADOW_SUFFIX
    await conn.execute(
        f"DROP TABLE IF EXISTS {quote(shadow)};"
        f"CREATE TABLE {quote(shadow)} (LIKE {quote(live)} INCLUDING ALL)"
    )
    deferred = await conn.fetch(_DEFERRED_INDEXES, quote(shadow))
    for index in deferred:
        await conn.execute(f"DROP INDEX {quote(index['name'])}")
    return Shadow(projection, shadow, [index["definition"] for index in deferred])


def _groups(projections: Sequence[Projection]) -> list[list[Projection]]:
    """The projections in groups, each filled by one replay, the biggest first. Projections that read a
    kind in common are one group: one read of the log feeds them all. The others are replayed apart: in
    one replay, each would get only its share of every batch, and a key that recurs every few batches of
    its own kind would leave memory between them, to be looked up and written again each time (the
    reports of `make bench` took twice the Python time replayed with SMS as alone)."""
    groups: list[list[Projection]] = []
    for projection in projections:
        sharing = [group for group in groups if any(projection.kinds & other.kinds for other in group)]
        groups = [group for group in groups if group not in sharing]
        groups.append([other for group in sharing for other in group] + [projection])
    # The replay's work is mostly per projection: the groups of most projections are the longest to fill.
    return sorted(groups, key=len, reverse=True)


class _Report:
    """Called after each batch of a group's replay: one log line per batch, the rebuild_progress row,
    and the caller's progress report."""

    def __init__(self, names: str, progress: Progress | None, publish: Callable[[int, int], None]) -> None:
        self._names, self._progress, self._publish = names, progress, publish
        self._last, self._last_at = 0, time.perf_counter()

    def start(self, head: int) -> None:
        """The replay starts: position 0 of `head`. A replay that waited for a process to be free starts
        long after the rebuild did, and its pace is reckoned from now."""
        self._last_at = time.perf_counter()
        self._publish(0, head)
        if self._progress is not None:
            self._progress(self._names, 0, head)

    def __call__(self, reached: int, head: int) -> None:
        now = time.perf_counter()
        _log.info(
            "rebuild batch",
            extra={
                "fields": {
                    "projections": self._names,
                    "reached": reached,
                    "head": head,
                    "events": reached - self._last,
                    "events_per_s": round((reached - self._last) / max(now - self._last_at, 1e-9)),
                }
            },
        )
        self._last, self._last_at = reached, now
        self._publish(reached, head)
        if self._progress is not None:
            self._progress(self._names, reached, head)


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
    shadow = await _create_shadow(conn, projection)

    def on_batch(reached: int, head: int) -> None:
        if progress is not None:
            progress(projection.name, reached, head)

    position = await fill(conn, conn, [shadow], region=region, batch_size=batch_size, on_batch=on_batch)
    return shadow.table, position


async def _fill_group(
    database_url: str,
    filler: asyncpg.Connection | FillProcess,
    group: list[Shadow],
    *,
    region: str,
    batch_size: int,
    progress: Progress | None,
) -> int:
    """Fill the group's shadows: in this process when `filler` is a connection (the writer), else in
    that child process."""
    names = [shadow.projection.name for shadow in group]
    async with published_progress(database_url, names) as publish:
        report = _Report(", ".join(names), progress, publish)
        if isinstance(filler, FillProcess):
            async with connect(database_url) as conn:
                report.start(await head_position(conn))
            return await filler.fill(
                database_url, group, region=region, batch_size=batch_size, on_batch=report
            )
        report.start(await head_position(filler))
        async with connect(database_url) as reader:
            return await fill(reader, filler, group, region=region, batch_size=batch_size, on_batch=report)


async def _swap_in(
    conn: asyncpg.Connection,
    shadow: Shadow,
    position: int,
    *,
    lock_holder: int,
    region: str,
    batch_size: int,
    progress: Progress | None,
) -> int:
    """Catch the shadow up and swap it in, if the session `lock_holder` still holds its rebuild lock."""
    projection = shadow.projection
    # A group filled early has fallen behind while the others finished: catch up outside the swap's
    # transaction, so that the live projector does not wait on it.
    position = await _catch_up(
        conn, projection, shadow.table, position, leave=SWAP_BACKLOG, region=region, batch_size=batch_size
    )
    for attempt in range(1, _SWAP_ATTEMPTS + 1):
        try:
            position = await _swap(
                conn,
                projection,
                shadow.table,
                position,
                lock_holder=lock_holder,
                region=region,
                batch_size=batch_size,
            )
            break
        except asyncpg.LockNotAvailableError:
            if attempt == _SWAP_ATTEMPTS:
                raise
            await asyncio.sleep(attempt)
    _log.info("rebuild swapped in", extra={"fields": {"projection": projection.name, "position": position}})
    if progress is not None:
        progress(projection.name, position, position)
    return position


async def rebuild_many(
    database_url: str,
    projections: Iterable[Projection],
    *,
    region: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    processes: int | None = None,
) -> dict[str, int]:
    """Rebuild the projections' tables; returns the position each new table is at, by projection name.
    No table is swapped in until every one is filled: an event that stops one rebuild stops them all.

    The replays use up to `processes` processes: by default one per core this process may run on, or
    this one alone for a log of fewer than LOG_WORTH_A_PROCESS events. Only registered projections can be
    filled in another process: a rebuild of any other runs in this one.

    Raises RebuildRunning when another rebuild of any of them runs, and RebuildRefused when something
    around a table could not be carried over to the new one; both before any work."""
    chosen = list({projection.name: projection for projection in projections}.values())
    if any(PROJECTIONS.get(projection.name) is not projection for projection in chosen):
        processes = 1
    positions = {}
    async with (
        holding_rebuild_locks(database_url, [projection.name for projection in chosen]) as lock,
        connect(database_url) as writer,
        contextlib.AsyncExitStack() as children,
    ):
        if processes is None:
            small = await head_position(writer) < LOG_WORTH_A_PROCESS
            processes = 1 if small else _usable_cores()
        groups = _groups(chosen)
        fillers: list[asyncpg.Connection | FillProcess] = [writer]
        # Started first: each child's imports overlap with the checks and the shadows' creation below.
        for _ in range(min(processes, len(groups)) - 1):
            fillers.append(await children.enter_async_context(FillProcess()))
        lock_holder = lock.get_server_pid()
        for projection in chosen:
            await refuse_what_cannot_be_carried_over(writer, quote(projection.table.name))
        shadows = {projection.name: await _create_shadow(writer, projection) for projection in chosen}
        shadow_groups = [[shadows[projection.name] for projection in group] for group in groups]
        filled: dict[int, int] = {}
        waiting = iter(enumerate(shadow_groups))

        async def fill_waiting(filler: asyncpg.Connection | FillProcess) -> None:
            # One iterator for every filler: each group goes to the first filler that is free.
            for n, group in waiting:
                filled[n] = await _fill_group(
                    database_url, filler, group, region=region, batch_size=batch_size, progress=progress
                )

        # One filler replays on this process's connection, each of the others in a child process. The
        # watch stops them all if the lock goes.
        try:
            async with asyncio.TaskGroup() as tasks:
                filled_all = asyncio.Event()
                tasks.create_task(lock_lost(lock, ", ".join(p.name for p in chosen), filled_all))
                await asyncio.gather(*(tasks.create_task(fill_waiting(filler)) for filler in fillers))
                filled_all.set()
        except BaseExceptionGroup as failed:
            # The first replay to fail has cancelled the others (and killed their processes): its error
            # is the rebuild's.
            raise failed.exceptions[0] from None
        for n, group in enumerate(shadow_groups):
            for shadow in group:
                positions[shadow.projection.name] = await _swap_in(
                    writer,
                    shadow,
                    filled[n],
                    lock_holder=lock_holder,
                    region=region,
                    batch_size=batch_size,
                    progress=progress,
                )
    return positions


def _usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system has one: Linux), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    lock_holder: int,
    region: str,
    batch_size: int,
) -> int:
    live = projection.table.name
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{_SWAP_LOCK_TIMEOUT}'")
        # Holding the checkpoint row keeps the live projector from writing this table until we commit.
        await conn.execute("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE", projection.name)
        position = await _catch_up(
            conn, projection, shadow, position, leave=0, region=region, batch_size=batch_size
        )
        # A rebuild whose lock connection was cut may have another rebuild of the same table going on
        # beside it, which would have made the shadow again: such a rebuild must not swap anything in.
        if not await still_held(conn, lock_holder, projection.name):
            raise RebuildRunning(
                f"the rebuild of {projection.name} lost its lock before the swap; nothing was swapped in"
            )
        await refuse_what_cannot_be_carried_over(conn, quote(live))
        surroundings = await read_surroundings(conn, quote(live))
        live_names = {shape: name for name, shape in await _indexes(conn, live)}
        replaced = live + _REPLACED_SUFFIX

        async def rename() -> None:
            await conn.execute(
                f"ALTER TABLE {quote(live)} RENAME TO {quote(replaced)};"
                f"ALTER TABLE {quote(shadow)} RENAME TO {quote(live)};"
                f"DROP TABLE {quote(replaced)}"
            )
            # LIKE ... INCLUDING ALL gave the indexes names of its own; give them the live table's back,
            # so that migrations (and a replica identity) written against those names keep working.
            for name, shape in await _indexes(conn, live):
                if (wanted := live_names.get(shape)) is not None and wanted != name:
                    await conn.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(wanted)}")

        await carry_over(conn, surroundings, rename)
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


async def _catch_up(
    conn: asyncpg.Connection,
    projection: Projection,
    table: str,
    position: int,
    *,
    leave: int,
    region: str,
    batch_size: int,
) -> int:
    """Apply the log, up to its head as it is now, to the shadow `table` with the live projector's
    batches until at most `leave` events are left; returns the position reached."""
    head = await head_position(conn)
    while head - position > leave:
        position = await project_batch(
            conn, projection, table, after=position, upto=head, limit=batch_size, region=region
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
