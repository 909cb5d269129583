"""Rebuilding from the log beside the live table, while webhooks and the live projector keep going."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from projections.live.projector import LiveProjector
from projections.rebuild.rebuild import SHADOW_SUFFIX, build_shadow, rebuild, rebuild_many
from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

NO_HANG_S = 30


def _webhooks(n: int) -> list[tuple[str, dict]]:
    stamp = f"2024-01-{1 + n % 28:02d}T10:00:00Z"
    return [
        ("calls", {**SEED["calls"], "call_id": f"call-{n % 50}", "timestamp": stamp, "duration": n}),
        (
            "recordings",
            {**SEED["recordings"], "call_id": f"call-{n % 50}", "timestamp": stamp, "size_bytes": n},
        ),
        ("sms", {**SEED["sms"], "sms_id": f"sms-{n}", "timestamp": stamp}),
        ("reports", {**SEED["reports"], "report_id": f"rep-{n % 20}", "timestamp": stamp}),
    ]


async def _live_rows_equal_rebuild(conn) -> None:
    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(conn, projection), (
            projection.name
        )


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "all-at-once"])
async def test_rebuild_during_ingestion_loses_nothing_and_readers_never_see_an_empty_table(
    db_url, pool, conn, org_id, together
):
    for n in range(50):
        await append_payloads(conn, org_id, _webhooks(n))
    await catch_up(pool)
    stop = asyncio.Event()
    projector = LiveProjector(pool, db_url, PROJECTIONS.values(), region=REGION, poll_interval_s=0.05)
    projector_task = asyncio.create_task(projector.run(stop))
    ingestion_done = asyncio.Event()

    async def ingest() -> None:
        for n in range(50, 250):
            await append_payloads(conn, org_id, _webhooks(n))
            await asyncio.sleep(0)
        ingestion_done.set()

    async def read() -> list[int]:
        seen = []
        async with pool.acquire() as reader:
            while not ingestion_done.is_set():
                seen.append(await reader.fetchval("SELECT count(*) FROM mightycall_sms_messages"))
                await asyncio.sleep(0.001)
        return seen

    ingestion, reader = asyncio.create_task(ingest()), asyncio.create_task(read())
    if together:
        positions = list(
            (await rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=100)).values()
        )
    else:
        positions = [
            await rebuild(db_url, projection, region=REGION, batch_size=100)
            for projection in PROJECTIONS.values()
        ]
    await ingestion
    counts = await reader
    head = await conn.fetchval("SELECT position FROM event_log_head")
    try:
        for _ in range(NO_HANG_S * 20):
            if {s.position for s in await projection_statuses(conn)} == {head}:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await projector_task

    assert all(0 < position <= head for position in positions)
    # 50 messages before the rebuild began; a reader never saw fewer, nor an error, nor an empty table.
    assert min(counts) >= 50
    assert counts == sorted(counts)
    assert await conn.fetchval("SELECT count(*) FROM mightycall_sms_messages") == 250
    await _live_rows_equal_rebuild(conn)
    assert {(s.name, s.position, s.table_version) for s in await projection_statuses(conn)} == {
        (name, head, projection.version) for name, projection in PROJECTIONS.items()
    }


async def test_an_abandoned_rebuild_leaves_the_live_table_alone_and_a_new_one_starts_over(
    db_url, pool, conn, org_id
):
    for n in range(20):
        await append_payloads(conn, org_id, _webhooks(n))
    await catch_up(pool)
    before = await table_rows(conn, "calls")
    # A rebuild that died after filling its shadow table, before the swap.
    await build_shadow(conn, PROJECTIONS["calls"], region=REGION, batch_size=10, progress=None)
    # Left visibly wrong: a stray row that no event made, and a row missing. A rebuild that reused this
    # shadow would swap both in.
    shadow = f"calls{SHADOW_SUFFIX}"
    await conn.execute(
        f"""INSERT INTO "{shadow}" SELECT gen_random_uuid(), org_id, 'stray-call', phone_number,
                   phone_number_id, caller_name, caller_phone, duration, status, direction, recording_url,
                   call_date, event_id
            FROM calls LIMIT 1"""
    )
    await conn.execute(f"DELETE FROM \"{shadow}\" WHERE call_id = 'call-3'")
    left = await table_rows(conn, shadow)
    assert "stray-call" in {row["call_id"] for row in left}
    assert "call-3" not in {row["call_id"] for row in left} and len(left) == len(before)
    assert await table_rows(conn, "calls") == before

    await rebuild(db_url, PROJECTIONS["calls"], region=REGION, batch_size=10)

    assert await table_rows(conn, "calls") == before
    assert not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"calls{SHADOW_SUFFIX}")


async def test_rebuild_keeps_index_names_and_grants(db_url, pool, conn, org_id):
    role = f"mc_reader_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE ROLE "{role}"; GRANT SELECT ON calls TO "{role}"')
    indexes_before = sorted(
        r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'calls'")
    )
    try:
        await append_payloads(conn, org_id, _webhooks(1))
        await rebuild(db_url, PROJECTIONS["calls"], region=REGION)
        await rebuild(db_url, PROJECTIONS["calls"], region=REGION)

        indexes = sorted(
            r["indexname"]
            for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'calls'")
        )
        assert indexes == indexes_before
        assert await conn.fetchval("SELECT has_table_privilege($1, 'calls', 'SELECT')", role)
        assert not await conn.fetchval("SELECT has_table_privilege($1, 'calls', 'INSERT')", role)
        assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
