"""An append the database gives up on: another session holds the log's head lock, and the database
cancels the waiting statement (the error `statement_timeout` raises) or times out its wait for the lock
(`lock_timeout`). The delivery gets a clean 503 with Retry-After, nothing is half-written, and once the
lock is released the same bytes are accepted: the service stayed up.

Only the statement under test is given up on: `lock_timeout` is set on the append function alone, and a
statement is cancelled only once it is seen waiting on this test's lock. (A timeout set on the whole
database would also cut short, on a busy machine, the requests that must succeed.)

`service/database/pool.py` bounds each command at 10 s on the client side (asyncio.TimeoutError,
already a 503);
these are the server's own errors, query-cancelled and lock-not-available.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.errors import DatabaseUnavailable
from service.database.pool import create_pool
from service.eventlog.append import Appended, Delivery
from service.eventlog.group_commit import Appender
from tests.support.deliveries import delivery
from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for

LOCK_TIMEOUT = "200ms"
CONCURRENT = 5
# A guard against hanging, not a measurement: each attempt is given up on by the server.
NO_HANG_S = 20

_BLOCKED_BY = """
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND $1 = ANY(pg_blocking_pids(pid))
"""


async def _time_out_appends(conn) -> None:
    """From now on an append waits at most LOCK_TIMEOUT for a lock; no other statement is affected."""
    # The service calls version 2 (eleven arrays); version 1's signature is a wrapper around it.
    await conn.execute(
        "ALTER FUNCTION append_events(timestamptz[], text[], text[], uuid[], text[], text[], bytea[],"
        f" bytea[], text[], bytea[], bigint[]) SET lock_timeout = '{LOCK_TIMEOUT}'"
    )


@contextlib.contextmanager
def _cancelling_what_waits_on(db_url: str, holder: asyncpg.Connection) -> Iterator[list[int]]:
    """While inside, every statement blocked by the session `holder` is cancelled by the server, with the
    error statement_timeout raises (57014). Yields the pids cancelled so far.

    The watcher runs in a thread with a loop of its own: the test client runs each request to its end
    without giving the test's loop a turn."""
    holder_pid = holder.get_server_pid()
    cancelled: list[int] = []
    stop = threading.Event()

    async def cancel() -> None:
        watcher = await asyncpg.connect(db_url)
        try:
            while not stop.is_set():
                for row in await watcher.fetch(_BLOCKED_BY, holder_pid):
                    if await watcher.fetchval("SELECT pg_cancel_backend($1)", row["pid"]):
                        cancelled.append(row["pid"])
                await asyncio.sleep(0.01)
        finally:
            await watcher.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        watching = thread.submit(asyncio.run, cancel())
        try:
            yield cancelled
        finally:
            stop.set()
            watching.result(NO_HANG_S)  # raises what the watcher raised


async def _head(conn) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    return row["position"], bytes(row["hash"])


class CountingAppender(Appender):
    """The real appender, counting the transactions it attempts."""

    transactions = 0

    async def _append(self, deliveries: list[Delivery]) -> list[Appended]:
        self.transactions += 1
        return await super()._append(deliveries)


@pytest.mark.parametrize("given_up_by", ["cancel", "lock_timeout"])
async def test_append_timed_out_by_the_database_is_a_clean_503_and_the_next_succeeds(
    settings, db_url, conn, org_id, given_up_by
):
    if given_up_by == "lock_timeout":
        await _time_out_appends(conn)

    async with AsyncTestClient(app=create_app(settings, db_url)) as client:
        first = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
        assert first.status_code == 202, first.text
        before = await _head(conn)

        kinds = ["sms", "recordings", "reports", "calls", "sms"][:CONCURRENT]
        bodies = [
            body_for(kind, org_id, timestamp=f"2024-02-0{n + 1}T00:00:00Z") for n, kind in enumerate(kinds)
        ]
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM event_log_head FOR UPDATE")
            cancelling = (
                _cancelling_what_waits_on(db_url, conn)
                if given_up_by == "cancel"
                else contextlib.nullcontext([])
            )
            with cancelling as cancelled:
                during = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            client.post(PATHS[kind], content=body, headers=bearer())
                            for kind, body in zip(kinds, bodies, strict=True)
                        )
                    ),
                    NO_HANG_S,
                )
            assert bool(cancelled) == (given_up_by == "cancel")
            # Nothing was written while the appends waited and gave up.
            assert await _head(conn) == before
            assert await conn.fetchval("SELECT count(*) FROM event_log") == 1

        for response in during:
            assert response.status_code == 503, response.text
            assert response.json().keys() == {"error", "details"}
            assert response.json()["error"] == "database_unavailable"
            assert response.headers["retry-after"]
            assert "Traceback" not in response.text
        assert await _head(conn) == before

        # The lock is released: the same bytes are now accepted, and the service reports itself ready.
        after = [
            await client.post(PATHS[kind], content=body, headers=bearer())
            for kind, body in zip(kinds, bodies, strict=True)
        ]
        assert [(r.status_code, r.json()) for r in after] == [
            (202, {"status": "accepted", "event_id": n}) for n in range(2, CONCURRENT + 2)
        ]
        assert (await client.get("/ready")).status_code == 200

    assert await conn.fetchval("SELECT count(*) FROM event_log") == CONCURRENT + 1


async def test_a_batch_the_database_gives_up_on_is_refused_at_once_not_one_delivery_at_a_time(
    conn, db_url, org_id
):
    # A batch that fails for one delivery's sake is retried one delivery at a time; a timeout is not
    # that delivery's fault, and retrying BATCH deliveries alone would wait out BATCH more timeouts while
    # every other request queues behind them.
    batch = 20
    await _time_out_appends(conn)
    pool = await create_pool(db_url)
    appender = CountingAppender(pool)
    appender.start()
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM event_log_head FOR UPDATE")
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(appender.append(delivery(org_id, n)) for n in range(batch)), return_exceptions=True
                ),
                NO_HANG_S,
            )
        assert [type(r) for r in results] == [DatabaseUnavailable] * batch
        # One attempt for the batch, not batch + 1 of them.
        assert appender.transactions == 1
        assert (await appender.append(delivery(org_id, 0))).event_id == 1
    finally:
        await appender.close()
        await pool.close()


async def test_a_lookup_the_database_gives_up_on_is_a_clean_503_too(settings, db_url, conn, org_id):
    # Not only the append: the organization lookup before it times out the same way when a migration,
    # say, holds the table.
    async with AsyncTestClient(app=create_app(settings, db_url)) as client:
        async with conn.transaction():
            await conn.execute("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
            with _cancelling_what_waits_on(db_url, conn) as cancelled:
                response = await asyncio.wait_for(
                    client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer()), NO_HANG_S
                )
            assert cancelled
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "database_unavailable"
        assert "Traceback" not in response.text
        assert (
            await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
        ).status_code == 202
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1
