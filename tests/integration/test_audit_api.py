"""The read-only audit API, end to end: webhooks are posted through the real endpoints, then read back
by auditors holding an all-organizations token or a token limited to one organization."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from tests.support.http import AUDIT_PATHS, SECOND_SECRET, SECRET, bearer
from tests.support.payloads import DROP, PATHS, body_for

ALL_TOKEN = "audit-all-token-123"
ORG_TOKEN = "audit-org-token-456"
ZERO_HASH = "0" * 64
ENVELOPE_KEYS = {
    "id",
    "received_at",
    "kind",
    "event_type",
    "org_id",
    "external_id",
    "body_sha256",
    "request_id",
    "admitted_from",
    "payload",
}
EXPORT_KEYS = ENVELOPE_KEYS | {"content_type", "prev_hash", "hash", "body_base64"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclasses.dataclass(frozen=True)
class Posted:
    id: int
    kind: str
    org_id: uuid.UUID
    body: bytes
    content_type: str


async def post(
    client: AsyncTestClient[Any], kind: str, body: bytes, content_type: str = "application/json"
) -> Posted:
    headers = {**bearer(), "Content-Type": content_type}
    response = await client.post(PATHS[kind], content=body, headers=headers)
    assert response.status_code == 202, response.text
    org_id = json.loads(body).get("org_id")
    return Posted(response.json()["event_id"], kind, uuid.UUID(org_id), body, content_type)


@pytest.fixture
async def other_org(conn: asyncpg.Connection) -> uuid.UUID:
    org = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Globex')", org)
    return org


@pytest.fixture
async def audit(settings: Settings, db_url: str, org_id: uuid.UUID) -> AsyncIterator[AsyncTestClient[Any]]:
    """An app with the audit API: one token for every organization, one limited to `org_id`."""
    with_audit = dataclasses.replace(settings, audit_tokens=((ALL_TOKEN, None), (ORG_TOKEN, org_id)))
    async with AsyncTestClient(app=create_app(with_audit, db_url)) as test_client:
        yield test_client


@pytest.fixture
async def log(audit: AsyncTestClient[Any], org_id: uuid.UUID, other_org: uuid.UUID) -> list[Posted]:
    """Eight deliveries over both organizations, every kind, one call_id in both organizations."""
    a, b = org_id, other_org
    recording_url = "https://mightycall.com/recordings/call_1.mp3"
    deliveries = [
        ("calls", body_for("calls", a, event="call.started", call_id="call_1", recording_url=DROP)),
        ("sms", body_for("sms", a, sms_id="sms_1")),
        ("calls", body_for("calls", a, call_id="call_1", recording_url=recording_url)),
        ("recordings", body_for("recordings", a, call_id="call_1", url=recording_url)),
        ("calls", body_for("calls", b, call_id="call_1")),
        ("sms", body_for("sms", b, sms_id="sms_2", event="sms.sent", direction="outbound")),
        ("reports", body_for("reports", a)),
        ("calls", body_for("calls", a, call_id="call_2")),
    ]
    posted = [await post(audit, kind, body) for kind, body in deliveries]
    assert [p.id for p in posted] == list(range(1, 9))
    return posted


async def get_events(client: AsyncTestClient[Any], token: str = ALL_TOKEN, **params: Any) -> dict[str, Any]:
    response = await client.get("/audit/events", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"events", "next_after"}
    return page


def ids(page: dict[str, Any]) -> list[int]:
    return [event["id"] for event in page["events"]]


def ndjson(text: str) -> list[dict[str, Any]]:
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def when(raw: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(raw)
    assert moment.tzinfo is not None
    return moment


# --- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        auth("not-a-token"),
        auth(ALL_TOKEN + "x"),
        {"Authorization": f"Basic {ALL_TOKEN}"},
        {"Authorization": ALL_TOKEN},
    ],
    ids=["missing", "wrong", "longer", "basic-scheme", "no-scheme"],
)
async def test_missing_or_wrong_token_is_401(audit, log, headers):
    for path in AUDIT_PATHS:
        response = await audit.get(path, headers=headers)

        assert response.status_code == 401, path
        assert set(response.json()) == {"error", "details"}
        assert response.json()["error"] == "unauthorized"
        assert ALL_TOKEN not in response.text


@pytest.mark.parametrize("secret", [SECRET, SECOND_SECRET])
async def test_a_webhook_secret_never_opens_the_audit_api(audit, log, secret):
    for path in AUDIT_PATHS:
        response = await audit.get(path, headers=auth(secret))

        assert response.status_code == 401, path
        assert set(response.json()) == {"error", "details"}


@pytest.mark.parametrize("token", [ALL_TOKEN, ORG_TOKEN])
@pytest.mark.parametrize("kind", list(PATHS))
async def test_an_audit_token_never_opens_a_webhook(audit, conn, org_id, token, kind):
    headers = {**auth(token), "Content-Type": "application/json"}
    response = await audit.post(PATHS[kind], content=body_for(kind, org_id), headers=headers)

    assert response.status_code == 401
    assert set(response.json()) == {"error", "details"}
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    assert await conn.fetchval("SELECT count(*) FROM rejected_deliveries") == 0


async def test_without_audit_tokens_the_audit_api_is_absent(client, org_id):
    # The default app: webhook secrets only. An event exists, so /audit/events/1 would have an answer.
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    assert response.status_code == 202

    for path in AUDIT_PATHS:
        for headers in ({}, auth(ALL_TOKEN), auth(SECRET)):
            response = await client.get(path, headers=headers)
            assert response.status_code == 404, (path, headers)


# --- scoping ----------------------------------------------------------------------------------------


async def test_scoped_token_lists_only_its_organization(audit, log, org_id, other_org):
    own = [p.id for p in log if p.org_id == org_id]
    assert len(own) < len(log)

    assert ids(await get_events(audit)) == [p.id for p in log]
    assert ids(await get_events(audit, ORG_TOKEN)) == own
    assert ids(await get_events(audit, ORG_TOKEN, org_id=str(org_id))) == own
    assert ids(await get_events(audit, ORG_TOKEN, kind="calls")) == [
        p.id for p in log if p.org_id == org_id and p.kind == "calls"
    ]
    assert await get_events(audit, ORG_TOKEN, org_id=str(other_org)) == {"events": [], "next_after": None}
    # The all-organizations token does see the other organization.
    assert ids(await get_events(audit, org_id=str(other_org))) == [p.id for p in log if p.org_id == other_org]


async def test_scoped_token_gets_404_for_another_organizations_event(audit, log, org_id, other_org):
    theirs = next(p for p in log if p.org_id == other_org)
    mine = next(p for p in log if p.org_id == org_id)

    for suffix in ("", "/raw"):
        hidden = await audit.get(f"/audit/events/{theirs.id}{suffix}", headers=auth(ORG_TOKEN))
        assert hidden.status_code == 404
        assert set(hidden.json()) == {"error", "details"}
        assert theirs.body.decode() not in hidden.text
        # The same event exists for the all-organizations token, and the scoped token sees its own.
        assert (
            await audit.get(f"/audit/events/{theirs.id}{suffix}", headers=auth(ALL_TOKEN))
        ).status_code == 200
        assert (
            await audit.get(f"/audit/events/{mine.id}{suffix}", headers=auth(ORG_TOKEN))
        ).status_code == 200


async def test_scoped_token_exports_only_its_organization(audit, log, org_id, other_org):
    response = await audit.get("/audit/export", headers=auth(ORG_TOKEN))
    assert response.status_code == 200
    lines = ndjson(response.text)
    assert [line["id"] for line in lines] == [p.id for p in log if p.org_id == org_id]
    assert {line["org_id"] for line in lines} == {str(org_id)}

    response = await audit.get("/audit/export", params={"org_id": str(other_org)}, headers=auth(ORG_TOKEN))
    assert response.status_code == 200
    assert response.text == ""


async def test_scoped_token_traces_nothing_in_another_organization(audit, log, org_id, other_org):
    # call_1 exists in both organizations.
    params = {"table": "calls", "key": "call_1"}
    theirs = await audit.get(
        "/audit/trace", params={**params, "org_id": str(other_org)}, headers=auth(ORG_TOKEN)
    )
    assert theirs.status_code == 200
    assert theirs.json() == {"events": [], "next_after": None}

    seen_by_all = await audit.get(
        "/audit/trace", params={**params, "org_id": str(other_org)}, headers=auth(ALL_TOKEN)
    )
    assert ids(seen_by_all.json()) == [p.id for p in log if p.org_id == other_org and p.kind == "calls"]
    mine = await audit.get("/audit/trace", params={**params, "org_id": str(org_id)}, headers=auth(ORG_TOKEN))
    assert ids(mine.json()) == [1, 3]


async def test_scoped_token_sees_no_rejected_deliveries(audit, conn, org_id):
    response = await audit.post(
        PATHS["calls"], content=body_for("calls", org_id, call_id=DROP), headers=bearer()
    )
    assert response.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM rejected_deliveries") == 1

    assert len((await audit.get("/audit/rejected", headers=auth(ALL_TOKEN))).json()["events"]) == 1
    scoped = await audit.get("/audit/rejected", headers=auth(ORG_TOKEN))
    assert scoped.status_code == 200
    assert scoped.json() == {"events": [], "next_after": None}


# --- GET /audit/events ------------------------------------------------------------------------------


async def test_each_event_is_a_flat_envelope_with_its_payload(audit, conn, log):
    page = await get_events(audit)
    rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM event_log")}

    assert page["next_after"] is None
    assert len(page["events"]) == len(log)
    for event, posted in zip(page["events"], log, strict=True):
        row = rows[posted.id]
        assert set(event) == ENVELOPE_KEYS
        assert event["id"] == posted.id
        assert event["kind"] == posted.kind
        assert event["event_type"] == json.loads(posted.body)["event"] == row["event_type"]
        assert event["org_id"] == str(posted.org_id)
        assert event["external_id"] == row["external_id"]
        assert event["body_sha256"] == hashlib.sha256(posted.body).hexdigest()
        assert event["payload"] == json.loads(posted.body)
        assert when(event["received_at"]) == row["received_at"]
        assert row["request_id"] is not None
        assert event["request_id"] == row["request_id"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "calls"}, [1, 3, 5, 8]),
        ({"kind": "sms"}, [2, 6]),
        ({"event_type": "call.started"}, [1]),
        ({"event_type": "sms.sent"}, [6]),
        ({"external_id": "call_1"}, [1, 3, 5]),
        ({"external_id": "call_1", "org_id": "A"}, [1, 3]),
        ({"org_id": "B"}, [5, 6]),
        ({"org_id": "A", "kind": "calls"}, [1, 3, 8]),
        ({"after": "3"}, [4, 5, 6, 7, 8]),
        ({"after": "3", "kind": "calls"}, [5, 8]),
        ({"after": "8"}, []),
        ({"external_id": "nothing-like-it"}, []),
    ],
)
async def test_filters(audit, log, org_id, other_org, params, expected):
    orgs = {"A": str(org_id), "B": str(other_org)}
    params = {k: orgs.get(v, v) if k == "org_id" else v for k, v in params.items()}

    page = await get_events(audit, **params)

    assert ids(page) == expected
    assert page["next_after"] is None


async def test_since_and_until_filter_on_the_received_time(audit, conn, log):
    received = {r["id"]: r["received_at"] for r in await conn.fetch("SELECT id, received_at FROM event_log")}
    middle = received[4]
    before = sorted(i for i, at in received.items() if at < middle)
    from_middle = sorted(i for i, at in received.items() if at >= middle)
    assert before and from_middle and 4 in from_middle

    assert ids(await get_events(audit, since=middle.isoformat())) == from_middle
    assert ids(await get_events(audit, until=middle.isoformat())) == before
    # The same instant written in another offset is the same instant.
    assert ids(
        await get_events(audit, since=middle.astimezone(dt.timezone(dt.timedelta(hours=5))).isoformat())
    ) == (from_middle)
    window = await get_events(audit, since=received[2].isoformat(), until=received[6].isoformat())
    assert ids(window) == sorted(i for i, at in received.items() if received[2] <= at < received[6])
    assert 2 in ids(window) and 6 not in ids(window)
    later = max(received.values()) + dt.timedelta(seconds=1)
    assert ids(await get_events(audit, since=later.isoformat())) == []
    assert ids(await get_events(audit, until=later.isoformat())) == [p.id for p in log]


async def test_pages_walk_every_event_once_in_order(audit, log):
    seen: list[int] = []
    pages = []
    after = 0
    while True:
        page = await get_events(audit, after=after, limit=3)
        pages.append(page)
        seen.extend(ids(page))
        if page["next_after"] is None:
            break
        assert page["next_after"] == ids(page)[-1]
        after = page["next_after"]

    assert seen == [p.id for p in log]
    assert [len(page["events"]) for page in pages] == [3, 3, 2]
    # A page that ends exactly at the last event says there is no next page.
    assert (await get_events(audit, limit=len(log)))["next_after"] is None
    assert (await get_events(audit, limit=len(log) - 1))["next_after"] == len(log) - 1


async def test_pages_apply_the_filters(audit, log, org_id):
    first = await get_events(audit, ORG_TOKEN, kind="calls", limit=2)
    assert ids(first) == [1, 3]
    assert first["next_after"] == 3
    second = await get_events(audit, ORG_TOKEN, kind="calls", limit=2, after=first["next_after"])
    assert ids(second) == [8]
    assert second["next_after"] is None


async def test_limit_defaults_to_100_and_allows_1000(audit, org_id):
    bodies = [body_for("sms", org_id, sms_id=f"sms_{n}") for n in range(105)]
    for chunk in range(0, len(bodies), 35):
        await asyncio.gather(*(post(audit, "sms", body) for body in bodies[chunk : chunk + 35]))

    default = await get_events(audit)
    assert ids(default) == list(range(1, 101))
    assert default["next_after"] == 100
    assert ids(await get_events(audit, after=100)) == list(range(101, 106))
    widest = await get_events(audit, limit=1000)
    assert ids(widest) == list(range(1, 106))
    assert widest["next_after"] is None


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"kind": "faxes"}, "kind"),
        ({"org_id": "nope"}, "org_id"),
        ({"since": "yesterday"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"since": "2024-01-20T14:30:00"}, "since"),
        ({"until": "2024-01-20T14:30:00"}, "until"),
        ({"after": "-1"}, "after"),
        ({"after": "abc"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"org": "00000000-0000-0000-0000-000000000000"}, "org"),
        ({"kind": "calls", "page": "2"}, "page"),
    ],
)
async def test_bad_filter_values_are_400_naming_the_parameter(audit, params, named):
    for token in (ALL_TOKEN, ORG_TOKEN):
        response = await audit.get("/audit/events", params=params, headers=auth(token))

        assert response.status_code == 400, response.text
        assert set(response.json()) == {"error", "details"}
        assert response.json()["error"] == "invalid_query"
        # \b: `org` must be named as such, not merely appear inside `org_id`.
        assert re.search(rf"\b{named}\b", response.json()["details"]), response.json()["details"]


# --- GET /audit/events/{id} -------------------------------------------------------------------------


async def test_one_event_is_its_envelope(audit, log):
    listed = {event["id"]: event for event in (await get_events(audit))["events"]}
    for posted in log:
        response = await audit.get(f"/audit/events/{posted.id}", headers=auth(ALL_TOKEN))

        assert response.status_code == 200
        assert response.json() == listed[posted.id]
        assert set(response.json()) == ENVELOPE_KEYS
        assert response.json()["payload"] == json.loads(posted.body)


@pytest.mark.parametrize("event_id", [0, 9, 10**12])
async def test_unknown_event_is_404(audit, log, event_id):
    for suffix in ("", "/raw"):
        response = await audit.get(f"/audit/events/{event_id}{suffix}", headers=auth(ALL_TOKEN))

        assert response.status_code == 404
        assert set(response.json()) == {"error", "details"}


# --- GET /audit/events/{id}/raw ---------------------------------------------------------------------


async def test_raw_answers_the_exact_bytes_with_their_content_type(audit, org_id):
    body = (
        b'{ "timestamp" : "2024-01-20T14:30:00+02:00",\r\n\t"call_id":"c\\u00e9-1",'
        b'  "event":"call.completed", "phone_number":"+1 (212) 555-1234",'
        b' "caller_name": "Jos\\u00e9 \xf0\x9f\x93\x9e \\ud83d\\udcde",'
        b' "x-extra": {"nested": [1, 2.50, null]},'
        b' "org_id": "' + str(org_id).encode() + b'" }\n\n'
    )
    posted = await post(audit, "calls", body, content_type="application/json; charset=utf-8")

    response = await audit.get(f"/audit/events/{posted.id}/raw", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["x-body-sha256"] == hashlib.sha256(body).hexdigest()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    # The decoded view of the same event is the JSON of those bytes.
    event = (await audit.get(f"/audit/events/{posted.id}", headers=auth(ALL_TOKEN))).json()
    assert event["payload"] == json.loads(body)
    assert event["external_id"] == "cé-1"


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ("text/html", "text/html"),
        ("text/plain; charset=latin-1", "text/plain; charset=latin-1"),
        ("application/json, text/html", "application/octet-stream"),
        ('application/json; charset="utf-8" garbage', "application/octet-stream"),
        ('application/json"><script>alert(1)</script>', "application/octet-stream"),
        ("application/json; charset=utf-8\ttext/html", "application/octet-stream"),
        ("json", "application/octet-stream"),
    ],
)
async def test_raw_never_echoes_a_content_type_that_is_not_a_plain_media_type(
    audit, conn, org_id, sent, answered
):
    body = body_for("sms", org_id)
    posted = await post(audit, "sms", body, content_type=sent)
    assert await conn.fetchval("SELECT content_type FROM event_log WHERE id = $1", posted.id) == sent

    response = await audit.get(f"/audit/events/{posted.id}/raw", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    assert response.content == body
    # Exactly as received (no charset added), or the neutral type.
    assert response.headers["content-type"] == answered
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-body-sha256"] == hashlib.sha256(body).hexdigest()


async def test_raw_without_a_content_type_is_octet_stream(audit, org_id):
    body = body_for("reports", org_id)
    response = await audit.post(PATHS["reports"], content=body, headers=auth(SECRET))
    assert response.status_code == 202, response.text

    raw = await audit.get(f"/audit/events/{response.json()['event_id']}/raw", headers=auth(ALL_TOKEN))

    assert raw.content == body
    assert raw.headers["content-type"] == "application/octet-stream"


# --- GET /audit/export ------------------------------------------------------------------------------


async def test_export_is_ndjson_with_bodies_and_a_linked_chain(audit, conn, log):
    response = await audit.get("/audit/export", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "application/x-ndjson"
    lines = ndjson(response.text)
    listed = (await get_events(audit))["events"]
    assert [line["id"] for line in lines] == [p.id for p in log]
    for line, event, posted in zip(lines, listed, log, strict=True):
        assert set(line) == EXPORT_KEYS
        assert {k: line[k] for k in ENVELOPE_KEYS} == event
        assert line["content_type"] == posted.content_type
        assert base64.b64decode(line["body_base64"], validate=True) == posted.body
        assert hashlib.sha256(base64.b64decode(line["body_base64"])).hexdigest() == line["body_sha256"]
        assert re.fullmatch("[0-9a-f]{64}", line["hash"])
    assert lines[0]["prev_hash"] == ZERO_HASH
    for previous, line in itertools.pairwise(lines):
        assert line["prev_hash"] == previous["hash"]
    hashes = {r["id"]: bytes(r["hash"]).hex() for r in await conn.fetch("SELECT id, hash FROM event_log")}
    assert {line["id"]: line["hash"] for line in lines} == hashes
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    assert (lines[-1]["id"], lines[-1]["hash"]) == (head["position"], bytes(head["hash"]).hex())


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "sms"}, [2, 6]),
        ({"kind": "calls", "org_id": "A"}, [1, 3, 8]),
        ({"external_id": "call_1"}, [1, 3, 5]),
        ({"event_type": "recording.available"}, [4]),
    ],
)
async def test_export_applies_the_filters(audit, conn, log, org_id, other_org, params, expected):
    orgs = {"A": str(org_id), "B": str(other_org)}
    params = {k: orgs.get(v, v) if k == "org_id" else v for k, v in params.items()}
    hashes = {r["id"]: bytes(r["hash"]).hex() for r in await conn.fetch("SELECT id, hash FROM event_log")}

    response = await audit.get("/audit/export", params=params, headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    lines = ndjson(response.text)
    assert [line["id"] for line in lines] == expected
    by_id = {p.id: p for p in log}
    for line in lines:
        assert base64.b64decode(line["body_base64"]) == by_id[line["id"]].body
        # Filtered out events still sit between: each line keeps its own place in the chain.
        assert line["hash"] == hashes[line["id"]]
        assert line["prev_hash"] == (hashes[line["id"] - 1] if line["id"] > 1 else ZERO_HASH)


async def test_export_refuses_bad_filters(audit):
    for params, named in (
        ({"kind": "faxes"}, "kind"),
        ({"org": "x"}, "org"),
        ({"since": "2024-01-20"}, "since"),
    ):
        response = await audit.get("/audit/export", params=params, headers=auth(ALL_TOKEN))
        assert response.status_code == 400
        assert re.search(rf"\b{named}\b", response.json()["details"])


# --- GET /audit/rejected ----------------------------------------------------------------------------


async def test_rejected_deliveries_with_reason_details_and_kind(audit, conn, org_id):
    invalid = body_for("calls", org_id, call_id=DROP)
    oversized = body_for("sms", org_id, message="x" * (1024 * 1024))
    unknown_org = body_for("reports", uuid.uuid4())
    assert (await audit.post(PATHS["calls"], content=invalid, headers=bearer())).status_code == 400
    assert (await audit.post(PATHS["sms"], content=oversized, headers=bearer())).status_code == 413
    assert (await audit.post(PATHS["reports"], content=unknown_org, headers=bearer())).status_code == 400
    # Unauthenticated deliveries are never recorded, so never listed.
    assert (await audit.post(PATHS["calls"], content=invalid, headers=auth("wrong"))).status_code == 401

    response = await audit.get("/audit/rejected", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    page = response.json()
    assert page["next_after"] is None
    assert [(e["kind"], e["reason"]) for e in page["events"]] == [
        ("calls", "invalid_payload"),
        ("sms", "payload_too_large"),
        ("reports", "unknown_organization"),
    ]
    details = {r["id"]: r["details"] for r in await conn.fetch("SELECT id, details FROM rejected_deliveries")}
    for event in page["events"]:
        assert event["details"] == details[event["id"]]
        assert event["details"]
        when(event["received_at"])
    assert "call_id" in page["events"][0]["details"]
    assert base64.b64decode(page["events"][0]["body_base64"]) == invalid
    assert page["events"][1]["body_base64"] is None
    assert page["events"][1]["body_size"] == len(oversized)

    calls = (await audit.get("/audit/rejected", params={"kind": "calls"}, headers=auth(ALL_TOKEN))).json()
    assert [e["reason"] for e in calls["events"]] == ["invalid_payload"]
    sms = (await audit.get("/audit/rejected", params={"kind": "sms"}, headers=auth(ALL_TOKEN))).json()
    assert [e["reason"] for e in sms["events"]] == ["payload_too_large"]


async def test_rejected_pages_like_events(audit, org_id):
    for n in range(5):
        body = body_for("sms", org_id, sms_id=f"sms_{n}", direction="sideways")
        assert (await audit.post(PATHS["sms"], content=body, headers=bearer())).status_code == 400

    seen: list[int] = []
    after = 0
    sizes = []
    while True:
        response = await audit.get(
            "/audit/rejected", params={"after": after, "limit": 2}, headers=auth(ALL_TOKEN)
        )
        assert response.status_code == 200
        page = response.json()
        seen.extend(ids(page))
        sizes.append(len(page["events"]))
        if page["next_after"] is None:
            break
        assert page["next_after"] == ids(page)[-1]
        after = page["next_after"]

    assert sizes == [2, 2, 1]
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen)
    for params in ({"limit": "0"}, {"after": "-1"}, {"kind": "faxes"}, {"org_id": str(org_id)}):
        response = await audit.get("/audit/rejected", params=params, headers=auth(ALL_TOKEN))
        assert response.status_code == 400, params
        assert re.search(rf"\b{next(iter(params))}\b", response.json()["details"])


# --- GET /audit/verify and /audit/checkpoint --------------------------------------------------------


async def test_verify_an_untampered_log(audit, conn, log):
    response = await audit.get("/audit/verify", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    last = await conn.fetchrow("SELECT id, hash FROM event_log ORDER BY id DESC LIMIT 1")
    assert last["id"] == len(log)
    assert response.json() == {
        "ok": True,
        "head": {"id": last["id"], "hash": bytes(last["hash"]).hex()},
        "failure": None,
    }


async def test_verify_an_empty_log(audit):
    response = await audit.get("/audit/verify", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    assert response.json() == {"ok": True, "head": {"id": 0, "hash": ZERO_HASH}, "failure": None}


async def test_checkpoint_is_the_head(audit, conn, log):
    before = dt.datetime.now(dt.UTC)
    response = await audit.get("/audit/checkpoint", headers=auth(ALL_TOKEN))

    assert response.status_code == 200
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    checkpoint = response.json()
    assert set(checkpoint) == {"position", "head_hash", "created_at"}
    assert head["position"] == len(log)
    assert (checkpoint["position"], checkpoint["head_hash"]) == (head["position"], bytes(head["hash"]).hex())
    assert before - dt.timedelta(seconds=5) <= when(checkpoint["created_at"]) <= dt.datetime.now(dt.UTC)

    await post(audit, "sms", body_for("sms", log[0].org_id, sms_id="sms_after_checkpoint"))
    moved = (await audit.get("/audit/checkpoint", headers=auth(ALL_TOKEN))).json()
    assert moved["position"] == len(log) + 1
    assert moved["head_hash"] != checkpoint["head_hash"]


# --- GET /audit/trace -------------------------------------------------------------------------------


async def test_trace_a_call_gives_its_events_in_log_order(audit, log, org_id):
    response = await audit.get(
        "/audit/trace",
        params={"table": "calls", "key": "call_1", "org_id": str(org_id)},
        headers=auth(ALL_TOKEN),
    )

    assert response.status_code == 200
    page = response.json()
    # Events 1 and 3 are call_1 in this organization; 5 is call_1 in the other one, 8 is call_2.
    assert ids(page) == [1, 3]
    assert page["next_after"] is None
    for event in page["events"]:
        single = (await audit.get(f"/audit/events/{event['id']}", headers=auth(ALL_TOKEN))).json()
        assert event == single

    other = await audit.get(
        "/audit/trace",
        params={"table": "calls", "key": "call_2", "org_id": str(org_id)},
        headers=auth(ALL_TOKEN),
    )
    assert ids(other.json()) == [8]


async def test_trace_a_recording_gives_the_call_with_its_url_and_the_recording_webhook(audit, log, org_id):
    response = await audit.get(
        "/audit/trace",
        params={"table": "mightycall_recordings", "key": "call_1", "org_id": str(org_id)},
        headers=auth(ALL_TOKEN),
    )

    assert response.status_code == 200
    events = response.json()["events"]
    # Event 1 (call.started) has no recording_url: it made no recording row.
    assert [(e["id"], e["kind"]) for e in events] == [(3, "calls"), (4, "recordings")]
    assert events[0]["payload"]["recording_url"] == events[1]["payload"]["url"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"table": "organizations", "key": "call_1"}, "table"),
        ({"table": "event_log", "key": "call_1"}, "table"),
        ({"table": "calls"}, "key"),
        ({"table": "calls", "key": ""}, "key"),
        ({"key": "call_1"}, "table"),
        ({"table": "calls", "key": "call_1", "org_id": "nope"}, "org_id"),
        ({"table": "calls", "key": "call_1", "call_id": "call_1"}, "call_id"),
    ],
)
async def test_trace_refuses_what_it_cannot_answer(audit, org_id, params, named):
    params = {"org_id": str(org_id), **params}

    response = await audit.get("/audit/trace", params=params, headers=auth(ALL_TOKEN))

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_query"
    assert re.search(rf"\b{named}\b", response.json()["details"]), response.json()["details"]
