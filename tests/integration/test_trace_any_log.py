"""`/audit/trace` answers for any log, including the bodies the door accepted before it refused them.

Before the door refused the escape \\u0000 (which PostgreSQL's json and jsonb cannot hold), a recording
could arrive with one in a field the service does not read. Such a body is in the log for good; trace
must still answer for every recording of that organization, that one included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.core.config import Settings
from service.eventlog.append import Delivery, append
from tests.support.hostile import ALL_TOKEN, audited_client
from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for


@pytest.fixture
async def audit(settings: Settings, db_url: str, org_id: uuid.UUID) -> AsyncIterator[AsyncTestClient[Any]]:
    async with audited_client(settings, db_url, org_id) as client:
        yield client


async def _append_as_an_older_door_did(conn: asyncpg.Connection, org_id: uuid.UUID, body: bytes) -> int:
    """Append a recordings body through the log's own append, as the door did before it held new
    deliveries to decode_delivery's rules."""
    delivery = Delivery(
        kind="recordings",
        event_type="recording.available",
        org_id=org_id,
        external_id=f"rec_{uuid.uuid4().hex[:8]}",
        content_type="application/json",
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
        received_at=dt.datetime.now(dt.UTC),
    )
    [appended] = await append(conn, [delivery])
    return appended.event_id


async def _trace(client: AsyncTestClient[Any], org_id: uuid.UUID, call_id: str) -> list[int]:
    response = await client.get(
        "/audit/trace",
        params={"table": "mightycall_recordings", "key": call_id, "org_id": str(org_id)},
        headers={"Authorization": f"Bearer {ALL_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return [event["id"] for event in response.json()["events"]]


async def test_a_body_jsonb_refuses_does_not_break_the_trace_of_any_recording(audit, conn, org_id):
    posted = await audit.post(
        PATHS["recordings"],
        content=body_for("recordings", org_id, call_id="call_1", url="https://example.com/1.mp3"),
        headers=bearer(),
    )
    assert posted.status_code == 202, posted.text
    # Today's door refuses it: the older one took it, and the log keeps it.
    nul = body_for("recordings", org_id, call_id="call_old", url="https://example.com/old.mp3", note="a\x00b")
    assert b"\\u0000" in nul
    refused = await audit.post(PATHS["recordings"], content=nul, headers=bearer())
    assert refused.status_code == 400, refused.text
    old = await _append_as_an_older_door_did(conn, org_id, nul)

    assert await _trace(audit, org_id, "call_1") == [posted.json()["event_id"]]
    assert await _trace(audit, org_id, "call_old") == [old]
    assert await _trace(audit, org_id, "call_none") == []


async def test_a_call_id_the_body_spells_with_escapes_is_still_traced(audit, conn, org_id):
    # JSON may spell any character as an escape: the key's bytes need not appear in the body as such.
    escaped = body_for("recordings", org_id, call_id="call_2", url="https://example.com/2.mp3").replace(
        b'"call_2"', b'"call\\u005f2"'
    )
    assert b"call_2" not in escaped
    nul = body_for("recordings", org_id, call_id="call_2", url="https://example.com/2b.mp3", note="\x00")
    first = await _append_as_an_older_door_did(conn, org_id, escaped)
    second = await _append_as_an_older_door_did(conn, org_id, nul)

    assert await _trace(audit, org_id, "call_2") == [first, second]


async def test_a_body_no_reader_can_decode_touches_no_row_and_trace_still_answers(audit, conn, org_id):
    # A NUL in a field the service reads: no projection can apply it (it stops there), so it made no row.
    unreadable = body_for("recordings", org_id, call_id="call_3\x00", url="https://example.com/3.mp3")
    await _append_as_an_older_door_did(conn, org_id, unreadable)
    readable = await _append_as_an_older_door_did(
        conn, org_id, body_for("recordings", org_id, call_id="call_3", url="https://example.com/3.mp3")
    )

    assert await _trace(audit, org_id, "call_3") == [readable]
