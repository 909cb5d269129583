"""`mightycall-ingest serve` stopped with SIGTERM under load: a graceful shutdown.

WORKERS concurrent clients post distinct webhooks of all four kinds to the real command, one attempt
each, and keep a ledger (tests/support/ledger.py) of the exact bytes and the answer. Once more than
WORKERS deliveries have been acknowledged the test sends SIGTERM to serve and the clients keep posting
until it has exited. Then:

- it exited 0 within the timeout, without a traceback, and nothing of it is still connected to the
  database (its projector child included);
- every answer was a 202, a clean 503 (JSON error with Retry-After) or a connection error: never a 500,
  never a 200 (every delivery is distinct), never a malformed body;
- every 202 is in `event_log` exactly once with its exact bytes under the event id it was told; a
  delivery refused or cut off is logged at most once; no row was sent by nobody; the chain verifies;
- requests in flight when the signal came were finished: some of them got their 202 after it.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
import psutil

from service.eventlog.verify import verify_log
from tests.support.ledger import (
    Ledger,
    alive,
    free_port,
    ledger_mismatches,
    other_backends,
    start_serve,
    wait_until_healthy,
)
from tests.support.waiting import wait_until

WORKERS = 24
LOAD_WITHIN_S = 60  # a guard: serve is healthy, so the first acknowledgements come at once
SHUTDOWN_TIMEOUT_S = 30  # uvicorn's graceful timeout is 15 s, the projector's stop as long again at most
REFUSED_PAUSE_S = 0.02


async def _deliver_once_each(client: httpx.AsyncClient, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        answer = await ledger.deliver(client, ledger.new())
        if isinstance(answer, str):
            await asyncio.sleep(REFUSED_PAUSE_S)  # nobody listening: do not spin


async def test_sigterm_under_load_finishes_what_it_answers_and_exits_cleanly(
    db_url, conn, org_id, tmp_path, request
):
    port = free_port()
    ledger = Ledger(org_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    log = tmp_path / "serve.log"

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as client:
        serve = await start_serve(db_url, port, log)
        try:
            await wait_until_healthy(client, serve)
            projectors = psutil.Process(serve.pid).children()
            workers = [asyncio.create_task(_deliver_once_each(client, ledger, stop)) for _ in range(WORKERS)]
            # Load to shut down under, as the assertions below ask: more acknowledged than there are clients.
            await wait_until(
                lambda: len(ledger.acknowledged()) > WORKERS, "load acknowledged", within_s=LOAD_WITHIN_S
            )
            in_flight = [entry for entry in ledger.entries if entry.in_flight]
            sent_term_at = loop.time()
            serve.send_signal(signal.SIGTERM)
            await asyncio.wait_for(serve.wait(), SHUTDOWN_TIMEOUT_S)
            shutdown_s = loop.time() - sent_term_at
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), SHUTDOWN_TIMEOUT_S)
        finally:
            stop.set()
            if serve.returncode is None:
                serve.kill()
                await serve.wait()

    entries = ledger.entries
    acked = ledger.acknowledged()
    finished_after_term = [e for e in in_flight if e.acked_at is not None and e.acked_at >= sent_term_at]
    figures = {
        "deliveries": len(entries),
        "answers": {str(k): v for k, v in sorted(ledger.answers().items(), key=str)},
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_finished_with_202": len(finished_after_term),
        "shutdown_s": round(shutdown_s, 2),
    }
    request.node.user_properties.extend(figures.items())

    assert serve.returncode == 0, figures
    assert b"Traceback" not in log.read_bytes()
    assert projectors, "serve started no projector"
    assert [p.pid for p in projectors if alive(p)] == []
    assert await other_backends(conn) == 0

    assert {a for a in ledger.answers() if isinstance(a, int)} - {202, 503} == set(), figures
    assert [m for e in entries for m in e.malformed] == []
    assert len(acked) > WORKERS, figures  # there was load to shut down under
    assert finished_after_term, figures

    assert await ledger_mismatches(conn, entries) == []
    logged = await conn.fetchval("SELECT count(*) FROM event_log")
    request.node.user_properties.append(("logged_without_a_2xx", logged - len(acked)))
    # Only a delivery cut off by the shutdown may be logged without its 202 having reached the client.
    assert len(acked) <= logged <= len(acked) + len(in_flight), figures
    verification = await verify_log(conn)
    assert verification.ok, verification
    assert verification.head_id == logged
