"""HTTP -> log: what each endpoint answers, and what it leaves in the database."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from tests.support.http import SECOND_SECRET, SECRET, bearer
from tests.support.payloads import DROP, PATHS, SEED, body_for

KINDS = list(PATHS)
EXTERNAL_ID = {"calls": "call_12345", "sms": "sms_12345", "recordings": "rec_12345", "reports": "rep_12345"}


async def _log_rows(conn):
    return await conn.fetch("SELECT * FROM event_log ORDER BY id")


@pytest.mark.parametrize("kind", KINDS)
async def test_seed_payload_is_accepted_and_logged_with_its_envelope(client, conn, org_id, kind):
    body = body_for(kind, org_id)
    response = await client.post(PATHS[kind], content=body, headers=bearer())

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "event_id": 1}
    [row] = await _log_rows(conn)
    assert row["id"] == 1
    assert bytes(row["body"]) == body
    assert bytes(row["body_sha256"]) == hashlib.sha256(body).digest()
    assert (row["kind"], row["event_type"], row["org_id"], row["external_id"]) == (
        kind,
        SEED[kind]["event"],
        org_id,
        EXTERNAL_ID[kind],
    )
    assert row["content_type"] == "application/json"


async def test_body_is_kept_byte_for_byte(client, conn, org_id):
    # Whitespace, key order, unicode escapes, a duplicated key and an unknown field: a re-serialised body
    # would lose every one of them.
    body = (
        b'{ "timestamp" : "2024-01-20T14:30:00+02:00",\r\n\t"call_id":"c\\u00e9-1",'
        b'  "event":"call.completed", "phone_number":"+1 (212) 555-1234",'
        b' "caller_name": "Jos\\u00e9 \xf0\x9f\x93\x9e", "status": "ringing",  "status": "completed",'
        b' "duration": 180, "x-extra": {"nested": [1, 2.50, null]},'
        b' "org_id": "' + str(org_id).encode() + b'" }\n\n'
    )
    response = await client.post(PATHS["calls"], content=body, headers=bearer())

    assert response.status_code == 202, response.text
    [row] = await _log_rows(conn)
    assert bytes(row["body"]) == body
    assert row["external_id"] == "cé-1"


async def test_integration_id_gives_the_organization(client, conn, org_id):
    integration = uuid.uuid4()
    await conn.execute("INSERT INTO integrations (id, org_id) VALUES ($1, $2)", integration, org_id)
    body = body_for("sms", None, integration_id=str(integration))

    response = await client.post(PATHS["sms"], content=body, headers=bearer())

    assert response.status_code == 202, response.text
    assert await conn.fetchval("SELECT org_id FROM event_log") == org_id


async def test_either_rotated_secret_is_accepted(client, conn, org_id):
    first = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer(SECRET))
    second = await client.post(
        PATHS["calls"], content=body_for("calls", org_id, call_id="call_2"), headers=bearer(SECOND_SECRET)
    )

    assert (first.status_code, second.status_code) == (202, 202)
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 2


async def test_exact_redelivery_is_a_duplicate_of_the_original(client, conn, org_id):
    body = body_for("calls", org_id)
    first = await client.post(PATHS["calls"], content=body, headers=bearer())
    other = await client.post(
        PATHS["calls"], content=body_for("calls", org_id, call_id="x"), headers=bearer()
    )
    again = await client.post(PATHS["calls"], content=body, headers=bearer())

    assert first.json() == {"status": "accepted", "event_id": 1}
    assert other.json() == {"status": "accepted", "event_id": 2}
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": 1}
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 2


# No test here of "the same bytes on another endpoint are not a duplicate": no body is valid on two
# endpoints, since each endpoint's `event` must carry its own prefix (call., sms., recording., report.;
# test_payloads.py test_event_of_another_kind_is_refused), so over HTTP the second endpoint always answers
# 400 before dedupe is reached. That dedupe is per endpoint is proven where it is decided, in the log:
# test_eventlog.py test_duplicates_within_one_batch_and_across_batches.


async def test_concurrent_redeliveries_append_once(client, conn, org_id):
    body = body_for("recordings", org_id)
    responses = await asyncio.gather(
        *(client.post(PATHS["recordings"], content=body, headers=bearer()) for _ in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202]
    assert {r.json()["event_id"] for r in responses} == {1}
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1


async def test_concurrent_distinct_deliveries_get_distinct_gapless_ids(client, conn, org_id):
    bodies = [body_for("sms", org_id, sms_id=f"sms_{i}") for i in range(50)]
    responses = await asyncio.gather(
        *(client.post(PATHS["sms"], content=body, headers=bearer()) for body in bodies)
    )

    assert {r.status_code for r in responses} == {202}
    ids = sorted(r.json()["event_id"] for r in responses)
    assert ids == list(range(1, 51))
    rows = await _log_rows(conn)
    by_id = {row["id"]: bytes(row["body"]) for row in rows}
    assert {by_id[r.json()["event_id"]] for r in responses} == set(bodies)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-secret-0123456789abc"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": SECRET},
    ],
    ids=["missing", "wrong", "prefix", "basic", "no-scheme"],
)
async def test_unauthenticated_delivery_is_refused_and_not_stored(client, conn, org_id, headers):
    response = await client.post(
        PATHS["calls"],
        content=body_for("calls", org_id),
        headers={**headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 401
    assert set(response.json()) == {"error", "details"}
    assert SECRET not in response.text
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    assert await conn.fetchval("SELECT count(*) FROM rejected_deliveries") == 0


async def test_body_over_the_limit_is_413_and_recorded_without_the_body(client, conn, org_id):
    body = body_for("sms", org_id, message="x" * (1024 * 1024))
    response = await client.post(PATHS["sms"], content=body, headers=bearer())

    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    rejected = await conn.fetchrow("SELECT kind, reason, body, body_size FROM rejected_deliveries")
    assert (rejected["kind"], rejected["reason"], rejected["body"]) == ("sms", "payload_too_large", None)
    assert rejected["body_size"] == len(body)


@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    [
        ("calls", {"call_id": DROP}, "call_id"),
        ("calls", {"duration": -1}, "$.duration"),
        ("calls", {"timestamp": "2024-01-20 14:30"}, "$.timestamp"),
        ("sms", {"direction": "sideways"}, "$.direction"),
        ("recordings", {"size_bytes": "big"}, "$.size_bytes"),
        ("reports", {"metrics": []}, "$.metrics"),
        ("reports", {"date": "20/01/2024"}, "$.date"),
        ("sms", {"event": "call.completed"}, "$.event"),
    ],
)
async def test_invalid_payload_is_400_naming_the_field_and_recorded(
    client, conn, org_id, kind, changes, field
):
    body = body_for(kind, org_id, **changes)
    response = await client.post(PATHS[kind], content=body, headers=bearer())

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_payload"
    assert field in response.json()["details"]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    rejected = await conn.fetchrow("SELECT kind, reason, details, body FROM rejected_deliveries")
    assert (rejected["kind"], rejected["reason"], bytes(rejected["body"])) == (kind, "invalid_payload", body)
    assert field in rejected["details"]


async def test_not_json_is_400(client, conn):
    response = await client.post(PATHS["calls"], content=b"call_id=1&event=call.completed", headers=bearer())

    assert response.status_code == 400
    assert "JSON" in response.json()["details"]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0


async def test_sms_text_never_reaches_the_error_body(client, conn, org_id):
    secret_text = "my account password is hunter2"
    body = body_for("sms", org_id, message=secret_text, direction="both")
    response = await client.post(PATHS["sms"], content=body, headers=bearer())

    assert response.status_code == 400
    assert secret_text not in response.text
    assert secret_text not in await conn.fetchval("SELECT details FROM rejected_deliveries")


@pytest.mark.parametrize(
    ("context", "details"),
    [
        ({}, "no organization context"),
        ({"org_id": "00000000-0000-0000-0000-000000000001"}, "unknown org_id"),
        ({"integration_id": "00000000-0000-0000-0000-000000000002"}, "unknown integration_id"),
        ({"org_id": "not-a-uuid"}, "$.org_id"),
    ],
)
async def test_missing_or_unknown_organization_is_400(client, conn, context, details):
    body = body_for("calls", None, **context)
    response = await client.post(PATHS["calls"], content=body, headers=bearer())

    assert response.status_code == 400
    assert details in response.json()["details"]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    assert await conn.fetchval("SELECT count(*) FROM rejected_deliveries") == 1


async def test_org_and_integration_that_disagree_are_400(client, conn, org_id):
    other = uuid.uuid4()
    integration = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Other')", other)
    await conn.execute("INSERT INTO integrations (id, org_id) VALUES ($1, $2)", integration, other)
    body = body_for("calls", org_id, integration_id=str(integration))

    response = await client.post(PATHS["calls"], content=body, headers=bearer())

    assert response.status_code == 400
    assert "different organizations" in response.json()["details"]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0


async def test_other_methods_and_paths_get_the_error_shape(client):
    for response in (
        await client.get(PATHS["calls"], headers=bearer()),
        await client.post("/functions/v1/mightycall-faxes-webhook", content=b"{}", headers=bearer()),
    ):
        assert response.status_code in (404, 405)
        assert set(response.json()) == {"error", "details"}
