"""`mightycall-ingest serve` killed with SIGKILL again and again under load: nothing acknowledged is lost,
nothing is logged twice, and the tables end as a rebuild makes them.

WORKERS concurrent clients post distinct webhooks of all four kinds to the real command over real HTTP,
each keeping a ledger entry per delivery (its exact bytes, and every answer: a status with its event id,
or the transport error). A delivery that gets no answer, a connection error or a 503 is sent again,
the same bytes, until it gets a 2xx; a retry of one whose commit went through but whose answer was lost
is answered 200 "duplicate" with the original's event id. Meanwhile the test SIGKILLs the serve process
group KILLS times, every 1-2 s while requests are in flight, and starts it again on the same port; every
other kill takes the projector child with it (as a container kill would), the others leave it to die
with its parent (PR_SET_PDEATHSIG).

Afterwards: every delivery is in `event_log` exactly once with its exact bytes, under the event id the
client was told; no row was sent by nobody; the hash chain verifies; the last instance's projector
catches up and every projection table equals a rebuild from the log; no process and no database
connection of any instance is left. The figures (kills, deliveries, requests cut off, duplicates
answered, seconds) are attached to the test's report (`user_properties`; `--junitxml` writes them).
Runs on the shared 2-core development machine: 5 kills during 900 to 1,270 deliveries (3,100 to
3,600 attempts, most of them refused connections while serve restarted) in about 20 s; all 24 clients
awaiting an answer at each kill, 10 to 28 requests cut off mid-request, 0 to 2 of those committed
before their answer was lost (a retry answered "duplicate"); none lost, none logged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal

import httpx
import psutil

from service.eventlog.verify import verify_log
from tests.support.ledger import (
    Entry,
    Ledger,
    alive,
    free_port,
    ledger_mismatches,
    other_backends,
    start_serve,
    wait_until_healthy,
)
from tests.support.projecting import assert_tables_equal_a_rebuild

# `make soak` runs the long version: MIGHTYCALL_SOAK_KILLS=12.
KILLS = int(os.environ.get("MIGHTYCALL_SOAK_KILLS", "5"))
WORKERS = 24
NO_HANG_S = 60
RETRY_PAUSE_S = 0.05


async def _deliver_until_acknowledged(client: httpx.AsyncClient, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        entry = ledger.new()
        while True:
            answer = await ledger.deliver(client, entry)
            if isinstance(answer, int) and answer != 503:
                break  # a 2xx, or an answer a retry would not change (the assertions name it)
            await asyncio.sleep(RETRY_PAUSE_S)


async def _load_for(seconds: float, ledger: Ledger, *, at_least: int) -> None:
    """Let the load run `seconds`, and at least until `at_least` more deliveries are acknowledged."""
    wanted = len(ledger.acknowledged()) + at_least
    await asyncio.sleep(seconds)
    for _ in range(NO_HANG_S * 50):
        if len(ledger.acknowledged()) >= wanted:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the load stalled: {ledger.answers()}")


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def test_sigkill_under_load_loses_and_duplicates_nothing(db_url, conn, org_id, tmp_path, request):
    rng = random.Random(11)
    port = free_port()
    ledger = Ledger(org_id)
    spawned: list[psutil.Process] = []
    in_flight_at_kills: list[int] = []
    stop = asyncio.Event()
    started = asyncio.get_running_loop().time()

    async def start(instance: int) -> asyncio.subprocess.Process:
        process = await start_serve(db_url, port, tmp_path / f"serve-{instance}.log")
        spawned.append(psutil.Process(process.pid))
        return process

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, limits=limits) as client:
        serve = await start(0)
        try:
            await wait_until_healthy(client, serve)
            workers = [
                asyncio.create_task(_deliver_until_acknowledged(client, ledger, stop)) for _ in range(WORKERS)
            ]
            for kill in range(1, KILLS + 1):
                await _load_for(rng.uniform(1.0, 2.0), ledger, at_least=50)
                projectors = psutil.Process(serve.pid).children()
                spawned.extend(projectors)
                in_flight_at_kills.append(ledger.in_flight())
                _kill_group(serve)
                if kill % 2 == 0:
                    for projector in projectors:
                        projector.kill()
                await asyncio.wait_for(serve.wait(), NO_HANG_S)
                assert serve.returncode == -signal.SIGKILL
                serve = await start(kill)
                await wait_until_healthy(client, serve)
            await _load_for(1.0, ledger, at_least=50)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), NO_HANG_S)

            # The last instance's projector brings every table to the head.
            head = await conn.fetchval("SELECT position FROM event_log_head")
            for _ in range(NO_HANG_S * 10):
                if await conn.fetchval(
                    "SELECT bool_and(position = $1) FROM projection_checkpoints", head
                ) or await conn.fetchval(
                    "SELECT count(*) FROM projection_checkpoints WHERE error IS NOT NULL"
                ):
                    break
                await asyncio.sleep(0.1)
            spawned.extend(psutil.Process(serve.pid).children())
            serve.send_signal(signal.SIGTERM)
            await asyncio.wait_for(serve.wait(), NO_HANG_S)
        finally:
            stop.set()
            _kill_group(serve)
    elapsed = asyncio.get_running_loop().time() - started

    entries = ledger.entries
    # Cut off mid-request by a kill (a ConnectError never reached a listening serve).
    cut: list[Entry] = [
        e for e in entries if any(isinstance(a, str) and a != "ConnectError" for a in e.answers)
    ]
    duplicates = [e for e in entries if any(status == 200 for status, _ in e.acks)]
    figures = {
        "kills": KILLS,
        "deliveries": len(entries),
        "attempts": sum(len(e.answers) for e in entries),
        "answers": {str(k): v for k, v in sorted(ledger.answers().items(), key=str)},
        "in_flight_at_kills": in_flight_at_kills,
        "deliveries_cut_mid_request": len(cut),
        "answered_duplicate_on_retry": len(duplicates),
        "seconds": round(elapsed, 1),
    }
    request.node.user_properties.extend(figures.items())

    assert serve.returncode == 0, figures
    # Kills landed under load: requests were in flight, and some were cut off mid-request.
    assert all(in_flight > 0 for in_flight in in_flight_at_kills), figures
    assert cut, figures
    # Every delivery was acknowledged in the end, with a 2xx only: no 500, no 4xx, no malformed answer.
    assert [e.n for e in entries if not e.acks] == [], figures
    assert {a for a in ledger.answers() if isinstance(a, int)} - {200, 202, 503} == set(), figures
    assert [m for e in entries for m in e.malformed] == []
    # A retry is answered "duplicate" only if an earlier attempt was cut off: its commit went through.
    assert set(duplicates) <= set(cut), figures

    assert await ledger_mismatches(conn, entries) == []
    assert await conn.fetchval("SELECT count(*) FROM event_log") == len(entries)
    verification = await verify_log(conn)
    assert verification.ok, verification
    assert verification.head_id == len(entries)

    await assert_tables_equal_a_rebuild(conn, head=len(entries))

    # Nothing of any instance is left: no process (a projector dies with its serve), no connection.
    for _ in range(NO_HANG_S * 10):
        if not any(alive(process) for process in spawned):
            break
        await asyncio.sleep(0.1)
    assert [p.pid for p in spawned if alive(p)] == []
    assert len(spawned) >= 2 * (KILLS + 1)  # every instance had its projector
    assert await other_backends(conn) == 0
    logs = b"".join(path.read_bytes() for path in sorted(tmp_path.glob("serve-*.log")))
    assert b"Traceback" not in logs
