"""One rebuild per projection at a time, across processes and hosts.

A second rebuild of a projection would drop the first one's shadow table mid-fill (both use
`<table>__rebuild`); the first would then go on writing into the second's table by name and swap a
partial table in. So each rebuild holds a session advisory lock per projection, on a connection of its
own that does nothing else for the whole rebuild: the lock lives and dies with that connection, so a
rebuild that dies (killed, its host gone) leaves nothing behind that blocks the next one; the shadow
table it leaves is dropped and made again by the next.

The lock is tried, never waited for: a second rebuild is refused at once with one line naming the
holder (its application name, server pid, client host, and since when), before it touches anything.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg

from service.database.pool import connect

__all__ = ["RebuildRunning", "holding_rebuild_locks", "lock_lost", "still_held"]

# The first of the two int4 keys of every rebuild lock, arbitrary to this service ("mcRB"); the second
# is the projection's name hashed. The live projector's lock uses the one-bigint form, which shows in
# pg_locks with objsubid 1: the two cannot meet.
_CLASS = 0x6D63_5242


def _key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFF_FFFF


class RebuildRunning(Exception):
    """Another rebuild holds the projection's lock; the message says who, on one line."""


_HOLDER = """
    SELECT a.application_name, a.pid, a.client_addr::text AS client_addr, a.client_hostname,
           a.backend_start
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid
"""


async def _who_holds(conn: asyncpg.Connection, name: str) -> str:
    row = await conn.fetchrow(_HOLDER, _CLASS, _key(name))
    if row is None:
        # Released between our try and this look: say so rather than guess.
        return f"another rebuild of {name} was running a moment ago; try again"
    host = row["client_hostname"] or row["client_addr"] or "a local socket"
    since = row["backend_start"].strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return (
        f"a rebuild of {name} is already running: {row['application_name'] or 'a session'} "
        f"(server pid {row['pid']}, from {host}) since {since}; "
        f"wait for it to end, or end it (pg_terminate_backend({row['pid']})) if it is stuck"
    )


@asynccontextmanager
async def holding_rebuild_locks(database_url: str, names: Iterable[str]) -> AsyncIterator[asyncpg.Connection]:
    """Hold the rebuild lock of every projection named, on a connection of its own, until the block
    ends; raise RebuildRunning, holding none of them, when another rebuild holds any."""
    chosen = sorted(set(names))
    async with connect(database_url) as conn:
        # The holder's name in pg_stat_activity says what it is doing, for the one refused.
        application_name = await conn.fetchval("SHOW application_name")
        await conn.execute(
            "SELECT set_config('application_name', $1, false)",
            f"{application_name} rebuild {','.join(chosen)}"[:63],
        )
        for name in chosen:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _CLASS, _key(name)):
                message = await _who_holds(conn, name)
                await conn.execute("SELECT pg_advisory_unlock_all()")
                raise RebuildRunning(message)
        yield conn


async def lock_lost(conn: asyncpg.Connection, names: str, done: asyncio.Event, every_s: float = 1.0) -> None:
    """Return once `done` is set; raise RebuildRunning if the lock connection `conn` goes first (cut, or
    its backend ended by an operator). Its locks went with it, and another rebuild may start: this one
    must stop writing rather than go on into that one's shadow table by name. (Ended by `done` rather
    than cancelled: a query cancelled mid-flight leaves asyncpg a cancel request to send.)"""
    while True:
        try:
            await asyncio.wait_for(done.wait(), every_s)
            return
        except TimeoutError:
            pass
        try:
            await conn.execute("SELECT 1")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise RebuildRunning(
                f"the rebuild of {names} lost the connection that held its lock ({type(exc).__name__}); "
                "it stopped, and nothing was swapped in"
            ) from exc


async def still_held(conn: asyncpg.Connection, holder_pid: int, name: str) -> bool:
    """True when the session `holder_pid` still holds `name`'s rebuild lock: checked in the swap's
    transaction, so that a rebuild whose lock connection was cut never swaps a table in."""
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (
                SELECT FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = $3
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid)
            """,
            _CLASS,
            _key(name),
            holder_pid,
        )
    )
