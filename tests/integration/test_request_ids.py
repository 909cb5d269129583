"""Request ids: the one in the response, the delivery's log line, its event (chained) or its rejection
are the same, so that an operator can go from a log line to the row and back."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.core.logs import JsonFormatter
from service.eventlog.chain import GENESIS_HASH, row_hash
from service.eventlog.verify import verify_log
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, body_for

AUDIT_TOKEN = "audit-token-for-request-ids"
GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def client(db_url: str):
    settings = Settings(database_url=db_url, webhook_secrets=(SECRET,), audit_tokens=((AUDIT_TOKEN, None),))
    async with AsyncTestClient(app=create_app(settings, db_url)) as test_client:
        yield test_client


def _delivery_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "mightycall.delivery"
    ]


async def test_an_accepted_delivery_shares_one_id_with_its_log_line_and_its_chained_event(
    client, conn, org_id, caplog
):
    caplog.set_level(logging.INFO)
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())

    assert response.status_code == 202
    request_id = response.headers["x-request-id"]
    assert GENERATED.fullmatch(request_id)
    assert await conn.fetchval("SELECT request_id FROM event_log WHERE id = 1") == request_id
    [line] = _delivery_lines(caplog)
    assert (line["request_id"], line["event_id"], line["outcome"]) == (request_id, 1, "accepted")
    # The id is part of the chained envelope: the log verifies with it, and without it would not.
    report = await verify_log(conn)
    assert report.ok, report
    row = await conn.fetchrow("SELECT * FROM event_log WHERE id = 1")
    assert row_hash(GENESIS_HASH, row) == bytes(row["hash"])
    assert row_hash(GENESIS_HASH, {**row, "request_id": None}) != bytes(row["hash"])


async def test_each_request_gets_its_own_id(client, org_id):
    ids = set()
    for n in range(3):
        body = body_for("calls", org_id, call_id=f"call_{n}")
        response = await client.post(PATHS["calls"], content=body, headers=bearer())
        assert response.status_code == 202
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 3


async def test_a_well_formed_id_from_the_caller_is_kept(client, conn, org_id):
    headers = {**bearer(), "X-Request-Id": "lb-7f3a:2024-01-20/42"}
    response = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=headers)

    assert response.status_code == 202
    assert response.headers["x-request-id"] == "lb-7f3a:2024-01-20/42"
    assert await conn.fetchval("SELECT request_id FROM event_log") == "lb-7f3a:2024-01-20/42"


@pytest.mark.parametrize(
    "offered",
    ["x" * 129, "has space", 'quote"d', "new\\nline", "caf\u00e9".encode(), "<script>", ""],
    ids=["too-long", "space", "quote", "backslash", "non-ascii", "markup", "empty"],
)
async def test_any_other_id_from_the_caller_is_replaced(client, conn, org_id, offered):
    headers = {**bearer(), "X-Request-Id": offered}
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=headers)

    assert response.status_code == 202
    stored = await conn.fetchval("SELECT request_id FROM event_log")
    assert stored == response.headers["x-request-id"]
    assert GENERATED.fullmatch(stored), stored


async def test_a_rejected_delivery_is_recorded_under_its_request_id(client, conn, caplog):
    caplog.set_level(logging.INFO)
    response = await client.post(PATHS["calls"], content=b'{"event": 1}', headers=bearer())

    assert response.status_code == 400
    request_id = response.headers["x-request-id"]
    assert await conn.fetchval("SELECT request_id FROM rejected_deliveries") == request_id
    [line] = _delivery_lines(caplog)
    assert line["request_id"] == request_id
    assert line["outcome"] == "invalid_payload"


async def test_refusals_before_any_database_work_still_carry_an_id(client, conn, org_id):
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer("wrong"))

    assert response.status_code == 401
    assert GENERATED.fullmatch(response.headers["x-request-id"])
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no-such-route", 404), ("GET", "/functions/v1/mightycall-sms-webhook", 405)],
)
async def test_litestars_own_answers_carry_an_id_too(client, method, path, status):
    response = await client.request(method, path, headers={"X-Request-Id": "lb-7f3a"})

    assert response.status_code == status
    assert response.headers["x-request-id"] == "lb-7f3a"


async def test_auditors_find_an_event_by_the_id_in_a_log_line(client, org_id):
    ids = []
    for n in range(3):
        body = body_for("calls", org_id, call_id=f"call_{n}")
        response = await client.post(PATHS["calls"], content=body, headers=bearer())
        ids.append(response.headers["x-request-id"])

    auditor = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    found = await client.get("/audit/events", params={"request_id": ids[1]}, headers=auditor)
    assert found.status_code == 200
    [event] = found.json()["events"]
    assert (event["id"], event["request_id"], event["external_id"]) == (2, ids[1], "call_1")
    exported = await client.get("/audit/export", params={"request_id": ids[2]}, headers=auditor)
    [line] = [json.loads(text) for text in exported.text.splitlines()]
    assert line["request_id"] == ids[2]
