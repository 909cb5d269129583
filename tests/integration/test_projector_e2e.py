"""HTTP -> log -> rows: the live projector inside the service fills each table as webhooks arrive."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from projections.model import row_id
from service.app import create_app
from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for

# A guard against waiting forever, not a measurement: rows normally appear within milliseconds.
NO_HANG_S = 15


async def _rows_when_there(conn, query, *args, count=1):
    for _ in range(NO_HANG_S * 20):
        rows = await conn.fetch(query, *args)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"no rows after {NO_HANG_S}s: {query}")


@pytest.fixture
async def phone_id(conn, org_id):
    # Imported in another spelling than the webhooks use: matching is on E.164.
    return await conn.fetchval(
        "INSERT INTO phone_numbers (org_id, phone_number, e164)"
        " VALUES ($1, '(212) 555-1234', '+12125551234') RETURNING id",
        org_id,
    )


async def test_a_call_fills_calls_and_recordings(client, conn, org_id, phone_id):
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    assert response.status_code == 202

    [call] = await _rows_when_there(conn, "SELECT * FROM calls WHERE org_id = $1", org_id)
    assert dict(call) == {
        "id": row_id("calls", org_id, "call_12345"),
        "org_id": org_id,
        "call_id": "call_12345",
        "phone_number": "+12125551234",
        "phone_number_id": phone_id,
        "caller_name": "John Doe",
        "caller_phone": "+14155555678",
        "duration": 180,
        "status": "completed",
        "direction": "inbound",
        "recording_url": "https://mightycall.com/recordings/rec_12345.mp3",
        "call_date": dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC),
        "event_id": 1,
    }
    [recording] = await _rows_when_there(
        conn, "SELECT * FROM mightycall_recordings WHERE org_id = $1", org_id
    )
    assert (recording["call_id"], recording["url"], recording["recording_id"]) == (
        "call_12345",
        "https://mightycall.com/recordings/rec_12345.mp3",
        None,
    )
    assert recording["phone_number_id"] == phone_id


async def test_a_recording_completes_the_row_its_call_created(client, conn, org_id):
    await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    await client.post(PATHS["recordings"], content=body_for("recordings", org_id), headers=bearer())

    [recording] = await _rows_when_there(
        conn, "SELECT * FROM mightycall_recordings WHERE org_id = $1 AND recording_id IS NOT NULL", org_id
    )
    assert await conn.fetchval("SELECT count(*) FROM mightycall_recordings") == 1
    assert (recording["recording_id"], recording["format"], recording["size_bytes"]) == (
        "rec_12345",
        "mp3",
        2890000,
    )
    assert recording["created_at"] == dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)
    assert recording["event_id"] == 2


async def test_an_sms_fills_its_table(client, conn, org_id, phone_id):
    await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())

    [sms] = await _rows_when_there(conn, "SELECT * FROM mightycall_sms_messages WHERE org_id = $1", org_id)
    assert (sms["sms_id"], sms["direction"], sms["sender"], sms["recipient"], sms["status"]) == (
        "sms_12345",
        "inbound",
        "+14155555678",
        "+12125551234",
        "received",
    )
    assert sms["message"] == "Hi, I have a question about my order"
    assert sms["phone_number_id"] == phone_id
    assert sms["message_date"] == dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)


async def test_a_report_fills_one_row_per_metric(client, conn, org_id, phone_id):
    await client.post(PATHS["reports"], content=body_for("reports", org_id), headers=bearer())

    rows = await _rows_when_there(
        conn, "SELECT * FROM mightycall_reports WHERE org_id = $1 ORDER BY metric_type", org_id, count=6
    )
    assert {row["metric_type"]: (row["value"], row["unit"]) for row in rows} == {
        "avg_call_duration": (Decimal(240), "seconds"),
        "calls_completed": (Decimal(40), "count"),
        "calls_missed": (Decimal(2), "count"),
        "calls_total": (Decimal(42), "count"),
        "sms_received": (Decimal(18), "count"),
        "sms_sent": (Decimal(15), "count"),
    }
    assert {(row["report_date"], row["report_type"], row["phone_number_id"]) for row in rows} == {
        (dt.date(2024, 1, 20), "daily", phone_id)
    }


async def test_an_older_retry_does_not_move_a_call_back(client, conn, org_id):
    newer = body_for("calls", org_id, status="completed", timestamp="2024-01-20T14:35:00Z")
    older = body_for("calls", org_id, status="ringing", timestamp="2024-01-20T14:30:00Z")
    await client.post(PATHS["calls"], content=newer, headers=bearer())
    await client.post(PATHS["calls"], content=older, headers=bearer())

    await _rows_when_there(conn, "SELECT 1 FROM projection_checkpoints WHERE name = 'calls' AND position = 2")
    [call] = await conn.fetch("SELECT status, event_id FROM calls")
    assert (call["status"], call["event_id"]) == ("completed", 1)


async def test_serve_warns_at_start_when_a_table_is_due_a_rebuild(settings, db_url, conn, caplog):
    # sms projected by version 0 (at position 0 a table holds nothing, and the code's version builds it)
    await conn.execute("UPDATE projection_checkpoints SET version = 0, position = 1 WHERE name = 'sms'")

    async with AsyncTestClient(app=create_app(settings, db_url)) as client:
        assert (await client.get("/health")).status_code == 200

    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "rebuild" in r.getMessage()]
    assert [r.getMessage() for r in warnings] == [
        "projection table built by an older version: run `mightycall-ingest rebuild sms`"
    ]
