"""A rebuild publishes how far it has got in `rebuild_progress` (for /metrics), and its swap removes it."""

from __future__ import annotations

import asyncio

from projections.rebuild.progress import published_progress
from projections.rebuild.rebuild import rebuild_many
from projections.registry import PROJECTIONS
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads


async def _progress(conn) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch("SELECT name, position, head FROM rebuild_progress")
    return {row["name"]: (row["position"], row["head"]) for row in rows}


async def test_the_latest_position_is_written_and_nothing_after_the_end(db_url, conn):
    async with published_progress(db_url, ["calls", "sms"], every_s=0.02) as publish:
        assert await _progress(conn) == {"calls": (0, 0), "sms": (0, 0)}
        publish(10, 50)
        publish(20, 50)
        for _ in range(200):
            if await _progress(conn) == {"calls": (20, 50), "sms": (20, 50)}:
                break
            await asyncio.sleep(0.01)
        assert await _progress(conn) == {"calls": (20, 50), "sms": (20, 50)}
        publish(30, 50)
    # Leaving waits for the writer: what is in the table now stays, nothing is written later.
    settled = await _progress(conn)
    await asyncio.sleep(0.1)
    assert await _progress(conn) == settled


async def test_each_swap_removes_its_projection_s_progress(db_url, conn, org_id):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(30)])
    await conn.execute("INSERT INTO rebuild_progress (name, position, head) VALUES ('reports', 3, 4)")

    await rebuild_many(db_url, [PROJECTIONS["sms"], PROJECTIONS["calls"]], region=REGION, batch_size=10)

    # Only the rebuilt projections' rows are gone; another's (left by a rebuild that died) is not touched.
    assert await _progress(conn) == {"reports": (3, 4)}
