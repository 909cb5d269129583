"""The primary killed under load and a synchronous standby promoted, as an HA manager would do it: no
acknowledged webhook is lost, and the same `serve` process finds the new primary by itself.

A primary and a streaming standby (tests/support/replication.py) with `synchronous_standby_names`
naming the standby and `synchronous_commit = on`: a COMMIT returns once the standby has the WAL, so a
2xx sent after it survives the primary. `serve` is given both hosts with target_session_attrs=read-write.
WORKERS clients post distinct webhooks of all four kinds, keep a ledger (tests/support/ledger.py) and
resend whatever got no 2xx. Mid-load the primary's processes are SIGKILLed, as if its machine died;
once the service has been seen answering 503 the standby is promoted and, as Patroni's non-strict
synchronous mode does, its `synchronous_standby_names` is cleared (it has no standby of its own left).
Checked on the new primary:

- every 2xx is in the log exactly once, with its bytes, under the event id it was told; positions are
  gapless; the hash chain verifies;
- every answer was a 2xx or a clean 503 with Retry-After: no 500, no hang; serve was never restarted;
- the live projector's leader lock, which died with the old primary, did not keep the new one from
  taking it: the projector is active on the new primary and every table equals a rebuild.

Run with replication made asynchronous (`synchronous=False`), the same test fails: the standby, held
back just before the kill, misses thousands of acknowledged deliveries.

And a commit that waits for a synchronous standby that is gone is a 503 within the service's command
timeout, not a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.database import migrations
from service.eventlog.verify import verify_log
from tests.support.http import SECRET, bearer
from tests.support.ledger import Ledger, free_port, ledger_mismatches, start_serve, wait_until_healthy
from tests.support.payloads import PATHS, body_for
from tests.support.projecting import assert_tables_equal_a_rebuild
from tests.support.replication import Node, primary_and_standby, wait_for_sync_standby

pytestmark = pytest.mark.slow

WORKERS = 16
ACKED_BEFORE_KILL = 300
ACKED_AFTER_PROMOTION = 300
REFUSED_WITHOUT_PRIMARY = 10 * WORKERS
STANDBY_BEHIND_BY = 200  # events, when replication is asynchronous
NO_HANG_S = 60  # a guard against hanging, never a measurement
CLIENT_TIMEOUT_S = 30  # a guard: the service bounds every database wait well below this
RETRY_PAUSE_S = 0.05
# The projector's leader lock is the live projector's advisory lock (projections/live/projector.py).
_LEADER_SESSIONS = """
    SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
    WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'mightycall-ingest/%'
"""


async def _deliver_until_acknowledged(client: httpx.AsyncClient, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        entry = ledger.new()
        while True:
            answer = await ledger.deliver(client, entry)
            if isinstance(answer, int) and answer != 503:
                break  # a 2xx, or an answer a retry would not change (the assertions name it)
            await asyncio.sleep(RETRY_PAUSE_S)


async def _until(condition, what: str) -> None:
    for _ in range(NO_HANG_S * 50):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"waited in vain for {what}")


def _five_hundreds(ledger: Ledger) -> int:
    return sum(answer == 503 for entry in ledger.entries for answer in entry.answers)


async def _standby_behind(primary: asyncpg.Connection, standby: asyncpg.Connection) -> bool:
    """Commits are waiting for the standby, or (replication being asynchronous) the primary's log is well
    ahead of the standby's."""
    if await primary.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"):
        return True
    head = "SELECT position FROM event_log_head"
    return bool(await primary.fetchval(head) >= await standby.fetchval(head) + STANDBY_BEHIND_BY)


async def _promote(standby: Node) -> None:
    """What the HA manager does once it declares the primary dead."""
    await asyncio.to_thread(standby.promote)
    conn = await asyncpg.connect(standby.url)
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture
def pair() -> Iterator[tuple[Node, Node]]:
    with primary_and_standby(synchronous=True) as nodes:
        yield nodes


@pytest.fixture
async def org_on(pair) -> uuid.UUID:
    """The pair migrated through both hosts, with one organization."""
    primary, _ = pair
    await wait_for_sync_standby(primary)
    await asyncio.to_thread(migrations.upgrade, _both(pair))
    org_id = uuid.uuid4()
    conn = await asyncpg.connect(primary.url)
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org_id)
    await conn.close()
    return org_id


def _both(pair: tuple[Node, Node]) -> str:
    primary, standby = pair
    hosts = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
    return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"


async def test_primary_killed_under_load_loses_no_acknowledged_webhook(
    pair, org_on, tmp_path, request, capsys
):
    primary, standby = pair
    loop = asyncio.get_running_loop()
    port = free_port()
    ledger = Ledger(org_on)
    stop = asyncio.Event()
    old_primary = await asyncpg.connect(primary.url)
    new_primary = await asyncpg.connect(standby.url)
    limits = httpx.Limits(max_connections=WORKERS + 2, max_keepalive_connections=WORKERS + 2)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=CLIENT_TIMEOUT_S, limits=limits)
    serve = await start_serve(_both(pair), port, tmp_path / "serve.log")
    try:
        await wait_until_healthy(client, serve)
        workers = [
            asyncio.create_task(_deliver_until_acknowledged(client, ledger, stop)) for _ in range(WORKERS)
        ]

        async def acked(at_least: int) -> bool:
            return len(ledger.acknowledged()) >= at_least

        await _until(lambda: acked(ACKED_BEFORE_KILL), "load before the kill")
        # The standby stops taking WAL just before the kill, so that the primary dies with commits the
        # standby never had: with asynchronous replication some of them would have been answered 2xx
        # and lost; with a synchronous standby none of them is answered.
        receiver = standby.walreceiver()
        receiver.suspend()
        await _until(lambda: _standby_behind(old_primary, new_primary), "the standby to fall behind")
        in_flight_at_kill = ledger.in_flight()
        acked_before_kill = len(ledger.acknowledged())
        await asyncio.to_thread(primary.kill)
        killed_at = loop.time()
        old_primary.terminate()
        receiver.resume()

        refused_before = _five_hundreds(ledger)

        async def refused() -> bool:
            return _five_hundreds(ledger) >= refused_before + REFUSED_WITHOUT_PRIMARY

        # The HA manager takes a while to declare the primary dead (Patroni: its TTL); meanwhile the
        # service keeps answering, and its sessions keep looking for a primary among the hosts.
        await _until(refused, "503s while there is no primary")
        ready_without_primary = (await client.get("/ready")).status_code
        await _promote(standby)
        promoted_at = loop.time()
        acked_at_promotion = len(ledger.acknowledged())
        await _until(lambda: acked(acked_at_promotion + ACKED_AFTER_PROMOTION), "load after promotion")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), NO_HANG_S)

        head = await new_primary.fetchval("SELECT position FROM event_log_head")

        async def projected() -> bool:
            query = "SELECT bool_and(position = $1 OR error IS NOT NULL) FROM projection_checkpoints"
            return bool(await new_primary.fetchval(query, head))

        await _until(projected, "the projector on the new primary")
        leaders = await new_primary.fetchval(_LEADER_SESSIONS)
        still_running = serve.returncode is None
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.wait(), NO_HANG_S)

        entries = ledger.entries
        after = [e.acked_at for e in entries if e.acked_at and e.acked_at > promoted_at]
        figures = {
            "deliveries": len(entries),
            "attempts": sum(len(e.answers) for e in entries),
            "answers": {str(k): v for k, v in sorted(ledger.answers().items(), key=str)},
            "kills": 1,
            "503s": _five_hundreds(ledger),
            "acknowledged_before_kill": acked_before_kill,
            "in_flight_at_kill": in_flight_at_kill,
            "seconds_without_primary": round(promoted_at - killed_at, 2),
            "seconds_from_promotion_to_next_2xx": round(min(after) - promoted_at, 2) if after else None,
        }
        request.node.user_properties.extend(figures.items())
        with capsys.disabled():
            print(f"\nfailover: {figures}")

        assert still_running, "serve had to be restarted"
        assert serve.returncode == 0, figures
        assert in_flight_at_kill > 0, figures
        assert ready_without_primary == 503, figures
        assert [e.n for e in entries if not e.acks] == [], figures
        assert set(ledger.answers()) - {200, 202, 503} == set(), figures
        assert [m for e in entries for m in e.malformed] == []

        assert await ledger_mismatches(new_primary, entries) == []
        ids = [r["id"] for r in await new_primary.fetch("SELECT id FROM event_log ORDER BY id")]
        assert ids == list(range(1, len(entries) + 1)) and head == len(entries), figures
        verification = await verify_log(new_primary)
        assert verification.ok, verification
        assert leaders == 1, "no projector took the leader lock on the new primary"
        await assert_tables_equal_a_rebuild(new_primary, head=head)
        assert b"Traceback" not in (tmp_path / "serve.log").read_bytes()
    finally:
        stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        await client.aclose()
        await new_primary.close()
        old_primary.terminate()


async def test_commits_waiting_for_a_lost_synchronous_standby_are_a_503_not_a_hang(pair, org_on):
    """After a failover the new primary has no standby, and with `synchronous_standby_names` still naming
    one every COMMIT waits for ever. The service's command timeout (service/database/pool.py) turns the
    wait into a 503; the client's retry is answered once a standby is back (or the setting cleared), with
    the event the first attempt had committed locally, once."""
    primary, standby = pair
    settings = Settings(database_url=_both(pair), webhook_secrets=(SECRET,), run_projector=False)
    body = body_for("calls", org_on)
    receiver = standby.walreceiver()
    async with AsyncTestClient(app=create_app(settings, _both(pair))) as client:
        receiver.suspend()
        try:
            waited = await asyncio.wait_for(
                client.post(PATHS["calls"], content=body, headers=bearer()), NO_HANG_S
            )
        finally:
            receiver.resume()
        retried = await asyncio.wait_for(
            client.post(PATHS["calls"], content=body, headers=bearer()), NO_HANG_S
        )
    assert waited.status_code == 503, waited.text
    assert waited.json()["error"] == "database_unavailable"
    assert waited.headers["retry-after"]
    assert retried.status_code in (200, 202), retried.text

    conn = await asyncpg.connect(primary.url)
    try:
        rows = await conn.fetch("SELECT id FROM event_log")
    finally:
        await conn.close()
    assert [row["id"] for row in rows] == [retried.json()["event_id"]]
