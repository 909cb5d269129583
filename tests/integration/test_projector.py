"""The live projector: checkpoints, a projection that cannot apply an event, leaders and racers."""

from __future__ import annotations

import asyncio

import asyncpg

from projections.live.projector import LiveProjector
from projections.registry import PROJECTIONS
from projections.runner import step
from projections.status import projection_statuses
from service.database.pool import create_pool
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

NO_HANG_S = 15


def _calls(*call_ids: str) -> list[tuple[str, dict]]:
    return [("calls", {**SEED["calls"], "call_id": call_id}) for call_id in call_ids]


async def _until(predicate, what: str) -> None:
    for _ in range(NO_HANG_S * 20):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {NO_HANG_S}s: {what}")


async def test_rows_and_checkpoint_advance_together(pool, conn, org_id):
    await append_payloads(conn, org_id, _calls("a", "b", "c"))
    assert await step(pool, PROJECTIONS["calls"], limit=2, region=REGION)

    assert await conn.fetchval("SELECT position FROM projection_checkpoints WHERE name = 'calls'") == 2
    assert [r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls ORDER BY event_id")] == [
        "a",
        "b",
    ]


async def test_checkpoint_moves_past_events_of_other_kinds(pool, conn, org_id):
    await append_payloads(conn, org_id, [("sms", SEED["sms"]), ("reports", SEED["reports"])])
    await catch_up(pool)

    statuses = {s.name: s for s in await projection_statuses(conn)}
    assert {name: (s.position, s.lag) for name, s in statuses.items()} == {
        "calls": (2, 0),
        "sms": (2, 0),
        "recordings": (2, 0),
        "reports": (2, 0),
    }
    assert await conn.fetchval("SELECT count(*) FROM calls") == 0


async def test_an_event_that_cannot_be_applied_stops_only_its_projection(db_url, pool, conn, org_id):
    # The table refuses one row: the projection must stop at that event, never skip it.
    await conn.execute("ALTER TABLE calls ADD CONSTRAINT no_poison CHECK (call_id <> 'poison')")
    await append_payloads(conn, org_id, [*_calls("ok-1", "poison", "ok-2"), ("sms", SEED["sms"])])
    projector = LiveProjector(pool, db_url, PROJECTIONS.values(), region=REGION)

    await projector.catch_up()

    statuses = {s.name: s for s in await projection_statuses(conn)}
    assert statuses["calls"].error_position == 2
    assert "CheckViolationError" in statuses["calls"].error
    assert statuses["calls"].position == 1
    assert [r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")] == ["ok-1"]
    assert (statuses["sms"].position, statuses["sms"].error) == (4, None)
    assert await conn.fetchval("SELECT count(*) FROM mightycall_sms_messages") == 1

    # Stopped means stopped: more events do not move it, even past the poison.
    await append_payloads(conn, org_id, _calls("ok-3"))
    await projector.catch_up()
    assert (await projection_statuses(conn))[0].position == 1

    # Fixed (here: the constraint dropped), a new leader retries it and catches up.
    await conn.execute("ALTER TABLE calls DROP CONSTRAINT no_poison")
    stop = asyncio.Event()
    leader = LiveProjector(pool, db_url, PROJECTIONS.values(), region=REGION, poll_interval_s=0.05)
    task = asyncio.create_task(leader.run(stop))
    try:
        await _until(
            lambda: conn.fetchval(
                "SELECT position = 5 AND error IS NULL FROM projection_checkpoints WHERE name='calls'"
            ),
            "calls caught up after the fix",
        )
    finally:
        stop.set()
        await task
    assert sorted(r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")) == [
        "ok-1",
        "ok-2",
        "ok-3",
        "poison",
    ]


async def test_racing_projectors_apply_each_event_once(db_url, pool, conn, org_id):
    other = await create_pool(db_url)
    try:
        appender = asyncio.create_task(_append_in_batches(conn, org_id, batches=30))
        racers = [asyncio.create_task(_keep_stepping(p, appender)) for p in (pool, other, pool, other)]
        await appender
        await asyncio.gather(*racers)
        await catch_up(pool)
    finally:
        await other.close()

    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(conn, projection), (
            projection.name
        )
    head = await conn.fetchval("SELECT position FROM event_log_head")
    assert {s.position for s in await projection_statuses(conn)} == {head}


async def _append_in_batches(conn, org_id, *, batches: int) -> None:
    for n in range(batches):
        stamp = f"2024-01-20T14:{n % 60:02d}:00Z"
        await append_payloads(
            conn,
            org_id,
            [
                ("calls", {**SEED["calls"], "call_id": f"call-{n % 7}", "timestamp": stamp, "duration": n}),
                ("recordings", {**SEED["recordings"], "call_id": f"call-{n % 7}", "timestamp": stamp}),
                ("sms", {**SEED["sms"], "sms_id": f"sms-{n % 5}", "timestamp": stamp, "status": f"s{n}"}),
            ],
        )
        await asyncio.sleep(0)


async def _keep_stepping(pool, appender: asyncio.Task) -> None:
    while not appender.done():
        for projection in PROJECTIONS.values():
            await step(pool, projection, limit=3, region=REGION)
        await asyncio.sleep(0)


async def test_one_leader_at_a_time_and_a_standby_takes_over(db_url, pool, conn, org_id):
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first = LiveProjector(
        pool, db_url, PROJECTIONS.values(), region=REGION, poll_interval_s=0.05, standby_retry_s=0.1
    )
    second = LiveProjector(
        pool, db_url, PROJECTIONS.values(), region=REGION, poll_interval_s=0.05, standby_retry_s=0.1
    )
    first_task = asyncio.create_task(first.run(stop_first))
    await _until(lambda: _true(first.active), "the first projector leads")
    second_task = asyncio.create_task(second.run(stop_second))
    try:
        await asyncio.sleep(0.5)
        assert (first.active, second.active) == (True, False)

        stop_first.set()
        await first_task
        await _until(lambda: _true(second.active), "the standby takes over")
        await append_payloads(conn, org_id, _calls("after-takeover"))
        await _until(lambda: conn.fetchval("SELECT count(*) = 1 FROM calls"), "the new leader projects")
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(first_task, second_task)


async def _true(value: bool) -> bool:
    return value


async def test_the_least_privileged_service_role_can_append_and_project(db_url, conn, org_id, granted_role):
    service = await asyncpg.create_pool(
        db_url, min_size=1, max_size=2, server_settings={"role": granted_role}
    )
    try:
        async with service.acquire() as as_service:
            assert await as_service.fetchval("SELECT current_user") == granted_role
            await append_payloads(
                as_service, org_id, [("calls", SEED["calls"]), ("reports", SEED["reports"])]
            )
        await catch_up(service)
    finally:
        await service.close()

    assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    assert await conn.fetchval("SELECT count(*) FROM mightycall_reports") == 6
    assert {r["position"] for r in await conn.fetch("SELECT position FROM projection_checkpoints")} == {2}
