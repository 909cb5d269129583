"""The live projector's joint batch (projections/live/joint_step.py): every projection from one read, the
same rows as each stepped alone, each event applied once, nothing written when any part fails."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from projections.live.joint_step import step_together
from projections.registry import PROJECTIONS
from projections.runner import step
from service.database.pool import create_pool
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, rebuilt_rows, table_rows

ALL = list(PROJECTIONS.values())


def _mixed(n: int) -> list[tuple[str, dict]]:
    """Calls and their recordings, SMS and reports, with keys that recur so that later events merge
    into rows earlier batches made."""
    stamp = f"2024-01-20T14:{n % 60:02d}:00Z"
    return [
        ("calls", {**SEED["calls"], "call_id": f"call-{n % 7}", "timestamp": stamp, "duration": n}),
        ("recordings", {**SEED["recordings"], "call_id": f"call-{n % 7}", "timestamp": stamp}),
        ("sms", {**SEED["sms"], "sms_id": f"sms-{n % 5}", "timestamp": stamp, "status": f"s{n}"}),
        ("reports", {**SEED["reports"], "report_id": f"r-{n % 3}", "timestamp": stamp}),
    ]


async def _positions(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT name, position FROM projection_checkpoints")
    return {row["name"]: row["position"] for row in rows}


async def _assert_as_rebuilt(conn: asyncpg.Connection) -> None:
    for projection in ALL:
        rows = await table_rows(conn, projection.table.name)
        assert rows, projection.name
        assert rows == await rebuilt_rows(conn, projection), projection.name


async def test_joint_batches_give_every_table_the_rows_of_a_rebuild(pool, conn, org_id):
    for n in range(12):
        await append_payloads(conn, org_id, _mixed(n))

    batches = 0
    async with pool.acquire() as projecting:
        while await step_together(projecting, ALL, limit=5, region=REGION):
            batches += 1

    assert batches == 48 // 5  # the last batch reaches the head and says so
    assert set((await _positions(conn)).values()) == {48}
    await _assert_as_rebuilt(conn)


async def test_each_projection_starts_from_its_own_checkpoint(pool, conn, org_id, caplog):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"s{n}"}) for n in range(3)])
    assert await step(pool, PROJECTIONS["sms"], limit=10, region=REGION)
    await append_payloads(conn, org_id, _mixed(1))
    caplog.set_level(logging.INFO, logger="mightycall.projector")

    async with pool.acquire() as projecting:
        assert not await step_together(projecting, ALL, limit=100, region=REGION)

    batches = {
        r.fields["projection"]: (r.fields["after"], r.fields["events"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "projector batch"
    }
    assert batches == {"sms": (3, 4), "calls": (0, 7), "recordings": (0, 7), "reports": (0, 7)}
    assert set((await _positions(conn)).values()) == {7}
    assert await conn.fetchval("SELECT count(*) FROM mightycall_sms_messages") == 4


async def test_a_checkpoint_someone_else_holds_is_skipped_not_waited_for(pool, conn, org_id):
    await append_payloads(conn, org_id, _mixed(0))
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM projection_checkpoints WHERE name = 'calls' FOR UPDATE")
        async with pool.acquire() as projecting:
            async with asyncio.timeout(10):
                assert not await step_together(projecting, ALL, limit=100, region=REGION)
        assert await _positions(conn) == {"calls": 0, "sms": 4, "recordings": 4, "reports": 4}
    async with pool.acquire() as projecting:
        assert not await step_together(projecting, ALL, limit=100, region=REGION)
    assert (await _positions(conn))["calls"] == 4
    assert await conn.fetchval("SELECT count(*) FROM calls") == 1


async def test_a_part_that_fails_writes_nothing_of_the_batch(pool, conn, org_id):
    await conn.execute("ALTER TABLE calls ADD CONSTRAINT no_poison CHECK (call_id <> 'poison')")
    await append_payloads(
        conn, org_id, [("sms", SEED["sms"]), ("calls", {**SEED["calls"], "call_id": "poison"})]
    )

    async with pool.acquire() as projecting:
        with pytest.raises(asyncpg.CheckViolationError):
            await step_together(projecting, ALL, limit=100, region=REGION)

    assert set((await _positions(conn)).values()) == {0}
    assert await conn.fetchval("SELECT count(*) FROM mightycall_sms_messages") == 0


async def test_a_stopped_projection_is_left_where_it_stopped(pool, conn, org_id):
    await append_payloads(conn, org_id, _mixed(0))
    await conn.execute("UPDATE projection_checkpoints SET error = 'stopped by hand' WHERE name = 'reports'")

    async with pool.acquire() as projecting:
        assert not await step_together(projecting, ALL, limit=100, region=REGION)

    assert await _positions(conn) == {"calls": 4, "sms": 4, "recordings": 4, "reports": 0}
    assert await conn.fetchval("SELECT count(*) FROM mightycall_reports") == 0


async def test_joint_and_single_steps_racing_apply_each_event_once(db_url, pool, conn, org_id):
    other = await create_pool(db_url)

    async def append_all() -> None:
        for n in range(30):
            await append_payloads(conn, org_id, _mixed(n))
            await asyncio.sleep(0)

    async def jointly(database: asyncpg.Pool) -> None:
        while not appending.done():
            async with database.acquire() as projecting:
                await step_together(projecting, ALL, limit=3, region=REGION)
            await asyncio.sleep(0)

    async def singly(database: asyncpg.Pool) -> None:
        while not appending.done():
            for projection in ALL:
                await step(database, projection, limit=2, region=REGION)
            await asyncio.sleep(0)

    try:
        appending = asyncio.create_task(append_all())
        await asyncio.gather(appending, jointly(pool), jointly(other), singly(pool), singly(other))
        async with pool.acquire() as projecting:
            while await step_together(projecting, ALL, limit=50, region=REGION):
                pass
    finally:
        await other.close()

    assert set((await _positions(conn)).values()) == {120}
    await _assert_as_rebuilt(conn)
