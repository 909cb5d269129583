"""Three `serve` processes behind one "load balancer" (the client spreads deliveries over them), one
PostgreSQL:

- appends from all three stay correct: every delivery in the log exactly once under the id it was
  told, positions gapless, the chain intact, although three group-commit appenders race for the head;
- exactly one of the three projectors is active at any time (one holder of the leader's advisory lock);
- SIGKILL the active projector: another process's projector takes over within seconds, and the tables
  equal a fresh rebuild once it has caught up.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

import asyncpg
import httpx
import psutil

from service.eventlog.verify import verify_log
from tests.support.ledger import (
    Ledger,
    free_port,
    ledger_mismatches,
    other_backends,
    start_serve,
    wait_until_healthy,
)
from tests.support.projecting import assert_tables_equal_a_rebuild

PROCESSES = 3
WORKERS = 12
DELIVERIES_EACH_PHASE = 300
TAKEOVER_WITHIN_S = 15  # a guard: standbys retry the lock every 2 s

# The leader holds a session advisory lock; its backend's application name carries its process id.
_LEADERS = """
    SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
"""


async def _leaders(conn: asyncpg.Connection) -> list[int]:
    return [int(row["application_name"].rpartition("/")[2]) for row in await conn.fetch(_LEADERS)]


async def _deliver(ledger: Ledger, clients: list[httpx.AsyncClient], count: int) -> None:
    spread = itertools.cycle(clients)
    queue = [ledger.new() for _ in range(count)]

    async def worker() -> None:
        while queue:
            entry = queue.pop()
            while not entry.acks and len(entry.answers) < 10:
                await ledger.deliver(next(spread), entry)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))


async def _wait_for_one_leader(conn: asyncpg.Connection, *, other_than: int | None = None) -> int:
    for _ in range(TAKEOVER_WITHIN_S * 10):
        leaders = await _leaders(conn)
        if len(leaders) == 1 and leaders[0] != other_than:
            return leaders[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no single new leader within {TAKEOVER_WITHIN_S} s: {await _leaders(conn)}")


async def test_three_processes_one_database(db_url, conn, org_id, tmp_path):
    ports = [free_port() for _ in range(PROCESSES)]
    serves = [await start_serve(db_url, port, tmp_path / f"serve-{port}.log") for port in ports]
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) for port in ports]
    ledger = Ledger(org_id)
    try:
        for client, serve in zip(clients, serves, strict=True):
            await wait_until_healthy(client, serve)
        projectors = {child.pid for serve in serves for child in psutil.Process(serve.pid).children()}
        assert len(projectors) == PROCESSES

        await _deliver(ledger, clients, DELIVERIES_EACH_PHASE)
        first = await _wait_for_one_leader(conn)
        assert first in projectors
        assert len(await _leaders(conn)) == 1  # still one: the standbys keep waiting

        os.kill(first, signal.SIGKILL)
        deliveries = asyncio.create_task(_deliver(ledger, clients, DELIVERIES_EACH_PHASE))
        second = await _wait_for_one_leader(conn, other_than=first)
        await deliveries
        for _ in range(TAKEOVER_WITHIN_S * 10):
            if await conn.fetchval("SELECT min(position) FROM projection_checkpoints") == len(ledger.entries):
                break
            await asyncio.sleep(0.1)
    finally:
        for client in clients:
            await client.aclose()
        for serve in serves:
            serve.send_signal(signal.SIGTERM)
        await asyncio.gather(*(serve.wait() for serve in serves))

    assert second != first
    entries = ledger.entries
    assert len(ledger.acknowledged()) == len(entries) == 2 * DELIVERIES_EACH_PHASE
    assert await ledger_mismatches(conn, entries) == []
    ids = [row["id"] for row in await conn.fetch("SELECT id FROM event_log ORDER BY id")]
    assert ids == list(range(1, len(entries) + 1))
    assert (await verify_log(conn)).ok
    # Every process took a share of the deliveries.
    logged_by = [(tmp_path / f"serve-{port}.log").read_text().count('"outcome":"accepted"') for port in ports]
    assert all(count > 0 for count in logged_by), logged_by
    assert sum(logged_by) == len(entries)

    await assert_tables_equal_a_rebuild(conn, head=len(entries))
    assert await other_backends(conn) == 0
