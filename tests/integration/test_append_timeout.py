"""An append the database gives up on: another session holds the log's head lock, and the service's
sessions have a short `statement_timeout` (or `lock_timeout`) set on the database. The delivery gets a
clean 503 with Retry-After, nothing is half-written, and once the lock is released the same bytes are
accepted: the service stayed up.

`service/database/pool.py` bounds each command at 10 s on the client side (asyncio.TimeoutError, already a
503); these are the server's own timeouts, which arrive as query-cancelled and lock-not-available errors.
"""

from __future__ import annotations

import asyncio

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

TIMEOUT = "200ms"
CONCURRENT = 5
# A guard against hanging, not a measurement: each attempt is cancelled by the server after TIMEOUT.
NO_HANG_S = 20


async def _time_out_new_sessions(conn, setting: str) -> None:
    """From now on the database's sessions (the app's pool, not `conn`) give up after TIMEOUT."""
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"ALTER DATABASE \"{database}\" SET {setting} = '{TIMEOUT}'")


async def _head(conn) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    return row["position"], bytes(row["hash"])


class CountingAppender(Appender):
    """The real appender, counting the transactions it attempts."""

    transactions = 0

    async def _append(self, deliveries: list[Delivery]) -> list[Appended]:
        self.transactions += 1
        return await super()._append(deliveries)


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
async def test_append_timed_out_by_the_database_is_a_clean_503_and_the_next_succeeds(
    settings, db_url, conn, org_id, setting
):
    await _time_out_new_sessions(conn, setting)

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
            during = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        client.post(PATHS[kind], content=body, headers=bearer())
                        for kind, body in zip(kinds, bodies, strict=True)
                    )
                ),
                NO_HANG_S,
            )
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
    await _time_out_new_sessions(conn, "lock_timeout")
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
    await _time_out_new_sessions(conn, "statement_timeout")
    async with AsyncTestClient(app=create_app(settings, db_url)) as client:
        async with conn.transaction():
            await conn.execute("LOCK TABLE organizations IN ACCESS EXCLUSIVE MODE")
            response = await asyncio.wait_for(
                client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer()), NO_HANG_S
            )
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "database_unavailable"
        assert "Traceback" not in response.text
        assert (
            await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
        ).status_code == 202
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1
