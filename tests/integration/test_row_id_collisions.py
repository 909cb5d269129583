"""Distinct natural keys are distinct rows in the live table and in a rebuild, whatever characters they
hold (the pure encoding is in tests/unit/test_row_ids.py)."""

from __future__ import annotations

from projections.registry import PROJECTIONS
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, catch_up, rebuilt_rows, table_rows


async def test_keys_that_a_separator_would_join_into_one_are_two_rows(pool, conn, org_id):
    # The two were one id when the parts were joined with \x1f: the second stopped the projection.
    recordings = [
        ("recordings", {**SEED["recordings"], "call_id": "a\x1fb", "url": "c"}),
        ("recordings", {**SEED["recordings"], "call_id": "a", "url": "b\x1fc"}),
    ]
    await append_payloads(conn, org_id, recordings)
    await catch_up(pool, projections=[PROJECTIONS["recordings"]])

    checkpoint = await conn.fetchrow(
        "SELECT position, error FROM projection_checkpoints WHERE name = 'recordings'"
    )
    assert (checkpoint["position"], checkpoint["error"]) == (2, None)
    rows = await table_rows(conn, "mightycall_recordings", org_id)
    assert sorted((r["call_id"], r["url"]) for r in rows) == [("a", "b\x1fc"), ("a\x1fb", "c")]
    assert len({r["id"] for r in rows}) == 2
    assert rows == await rebuilt_rows(conn, PROJECTIONS["recordings"], org_id=org_id)
