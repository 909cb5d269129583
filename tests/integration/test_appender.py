"""Group commit: concurrent deliveries share transactions, and each is answered after its own commit."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from service.core.errors import DatabaseUnavailable, Overloaded, UnknownOrganization
from service.eventlog.group_commit import Appender
from tests.support.deliveries import delivery


@pytest.fixture
async def appender(pool):
    running = Appender(pool)
    running.start()
    yield running
    await running.close()


async def test_concurrent_deliveries_share_transactions(appender, conn, org_id):
    results = await asyncio.gather(*(appender.append(delivery(org_id, n)) for n in range(200)))

    assert sorted(r.event_id for r in results) == list(range(1, 201))
    # Rows written by one transaction share its xmin: fewer transactions than rows means batching.
    transactions = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM event_log")
    assert transactions < 200
    # Each caller got the id of its own delivery.
    rows = {r["external_id"]: r["id"] for r in await conn.fetch("SELECT id, external_id FROM event_log")}
    assert [rows[f"c{n}"] for n in range(200)] == [r.event_id for r in results]


async def test_a_bad_delivery_does_not_sink_its_batch(appender, conn, org_id):
    # An organization that vanished after it was resolved fails that delivery alone.
    ghost = uuid.uuid4()
    deliveries = [delivery(org_id, 1), delivery(ghost, 2), delivery(org_id, 3)]
    results = await asyncio.gather(*(appender.append(d) for d in deliveries), return_exceptions=True)

    assert isinstance(results[1], UnknownOrganization)
    assert [r.event_id for r in (results[0], results[2])] == [1, 2]
    assert [r["external_id"] for r in await conn.fetch("SELECT external_id FROM event_log ORDER BY id")] == [
        "c1",
        "c3",
    ]


async def test_close_commits_what_was_queued_and_refuses_the_rest(pool, conn, org_id):
    appender = Appender(pool)
    appender.start()
    pending = [asyncio.create_task(appender.append(delivery(org_id, n))) for n in range(30)]
    await asyncio.sleep(0)  # the tasks enqueue their deliveries
    await appender.close()

    results = await asyncio.gather(*pending)
    assert sorted(r.event_id for r in results) == list(range(1, 31))
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 30
    with pytest.raises(DatabaseUnavailable, match="shutting down"):
        await appender.append(delivery(org_id, 99))


async def test_queue_is_bounded(pool, conn, org_id):
    appender = Appender(pool, max_pending=5)
    appender.start()
    try:
        results = await asyncio.gather(
            *(appender.append(delivery(org_id, n)) for n in range(20)), return_exceptions=True
        )
    finally:
        await appender.close()

    refused = [r for r in results if isinstance(r, Overloaded)]
    accepted = [r for r in results if not isinstance(r, Exception)]
    assert refused and accepted
    assert len(refused) + len(accepted) == 20
    assert await conn.fetchval("SELECT count(*) FROM event_log") == len(accepted)
