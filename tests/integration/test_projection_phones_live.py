"""The phone number a row ends up showing is linked live exactly as a rebuild links it, even when
that number came from an earlier batch than the event that made it the row's visible one."""

from __future__ import annotations

import asyncpg
import pytest

from projections.recordings import PROJECTION as RECORDINGS
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, catch_up, rebuilt_rows, table_rows

CALL_NUMBER = "+12125551234"  # imported below
RECORDING_NUMBER = "+13105550000"  # not imported


@pytest.fixture
async def pool(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_a_recording_falls_back_to_the_calls_number_live_as_in_a_rebuild(pool, conn, org_id):
    phone_id = await conn.fetchval(
        "INSERT INTO phone_numbers (org_id, phone_number, e164) VALUES ($1, $2, $2) RETURNING id",
        org_id,
        CALL_NUMBER,
    )
    call = {**SEED["calls"], "phone_number": CALL_NUMBER, "timestamp": "2024-01-20T14:30:00Z"}
    recording = {**SEED["recordings"], "phone_number": RECORDING_NUMBER, "timestamp": "2024-01-20T14:31:00Z"}
    # A later recording webhook without a number: the row shows the call's number again.
    numberless = {**recording, "timestamp": "2024-01-20T14:32:00Z"}
    del numberless["phone_number"]
    # Each in a batch of its own, as the live projector would meet them under light load.
    for payload in (("calls", call), ("recordings", recording), ("recordings", numberless)):
        await append_payloads(conn, org_id, [payload])
        await catch_up(pool, projections=[RECORDINGS])

    [row] = await table_rows(conn, "mightycall_recordings")
    assert (row["phone_number"], row["phone_number_id"]) == (CALL_NUMBER, phone_id)
    assert await table_rows(conn, "mightycall_recordings") == await rebuilt_rows(conn, RECORDINGS)
