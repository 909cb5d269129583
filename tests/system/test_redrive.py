"""Redrive: refused deliveries admitted once their cause is fixed, through the real command and the
real app, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.eventlog.chain import GENESIS_HASH, row_hash
from service.eventlog.verify import verify_log
from service.ingest.organizations import OrgResolver
from service.ingest.redrive import admit
from tests.support.cli import run_cli
from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for
from tests.support.projecting import catch_up, table_rows

AUDIT_TOKEN = "audit-token-redrive-0123"


@pytest.fixture
async def app(settings: Settings, db_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    with_audit = dataclasses.replace(settings, audit_tokens=((AUDIT_TOKEN, None),))
    async with AsyncTestClient(app=create_app(with_audit, db_url)) as test_client:
        yield test_client


async def refuse(app: AsyncTestClient[Any], kind: str, body: bytes, **headers: str) -> int:
    """Post `body`, expect a refusal, and return the id of its row in rejected_deliveries."""
    response = await app.post(PATHS[kind], content=body, headers={**bearer(), **headers})
    assert 400 <= response.status_code < 500, response.text
    listing = await app.get("/audit/rejected", headers={"Authorization": f"Bearer {AUDIT_TOKEN}"})
    found: int = listing.json()["events"][-1]["id"]
    return found


def summary(out: bytes) -> str:
    return out.decode().strip().splitlines()[-1]


async def test_a_delivery_refused_for_an_unknown_organization_is_admitted_once_it_exists(
    app: AsyncTestClient[Any], db_url: str, conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    org = uuid.uuid4()
    body = body_for("calls", org, call_id="call_redrive")
    rejection = await refuse(app, "calls", body, **{"X-Request-Id": "lb-redrive-1"})
    refused = await conn.fetchrow("SELECT * FROM rejected_deliveries WHERE id = $1", rejection)
    assert refused["reason"] == "unknown_organization"

    status, out, err = await run_cli(db_url, "rejected", "list")
    assert status == 0, err
    line = next(line for line in out.decode().splitlines() if line.split()[0] == str(rejection))
    assert "unknown_organization" in line and " kept " in line and re.search(r"\bno\b", line)

    status, out, err = await run_cli(db_url, "rejected", "admit", "--all")
    assert status == 0, err
    assert summary(out) == "0 admitted, 0 already in the log, 1 still refused, 0 no body"
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0

    status, _, err = await run_cli(db_url, "orgs", "add", "--name", "Late Inc", "--id", str(org))
    assert status == 0, err
    status, out, err = await run_cli(db_url, "rejected", "admit", "--all")
    assert status == 0, err
    assert summary(out) == "1 admitted, 0 already in the log, 0 still refused, 0 no body"
    event = await conn.fetchrow("SELECT * FROM event_log")
    assert bytes(event["body"]) == body
    assert event["received_at"] == refused["received_at"]
    assert event["request_id"] == "lb-redrive-1"
    assert event["admitted_from"] == rejection

    # Projected like any other event.
    await catch_up(pool)
    (call,) = await table_rows(conn, "calls", org)
    assert (call["call_id"], call["event_id"]) == ("call_redrive", event["id"])

    # Admitting again, by id this time, appends nothing.
    status, out, err = await run_cli(db_url, "rejected", "admit", str(rejection))
    assert status == 0, err
    assert summary(out) == "0 admitted, 1 already in the log, 0 still refused, 0 no body"
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1

    status, out, _ = await run_cli(db_url, "rejected", "list")
    assert f"admitted as {event['id']}" in out.decode()
    status, _, err = await run_cli(db_url, "events", "verify")
    assert status == 0, err

    audit = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    shown = (await app.get(f"/audit/events/{event['id']}", headers=audit)).json()
    assert shown["admitted_from"] == rejection
    (item,) = (await app.get("/audit/rejected", headers=audit)).json()["events"]
    assert item["in_log_as"] == event["id"]
    assert item["last_admission"]["outcome"] == "duplicate"
    metrics = (await app.get("/metrics")).text
    assert 'mightycall_admissions_total{kind="calls",outcome="admitted"} 1.0' in metrics
    assert 'mightycall_admissions_total{kind="calls",outcome="duplicate"} 1.0' in metrics
    assert 'mightycall_admissions_total{kind="calls",outcome="refused"} 1.0' in metrics


async def test_a_body_still_invalid_stays_refused_with_todays_reason(
    app: AsyncTestClient[Any], db_url: str, conn: asyncpg.Connection, org_id: uuid.UUID
) -> None:
    not_json = await refuse(app, "sms", b"{not json")
    # A refusal recorded by an older release, for a reason today's checks no longer give: its body
    # now fails on its organization, and says so.
    older = await conn.fetchval(
        "INSERT INTO rejected_deliveries (received_at, kind, reason, details, body_size, body)"
        " VALUES (now(), 'sms', 'invalid_payload', 'an older check', 10, $1) RETURNING id",
        body_for("sms", uuid.uuid4()),
    )
    status, out, err = await run_cli(db_url, "rejected", "admit", str(not_json), str(older))
    assert status == 0, err
    lines = out.decode().splitlines()
    assert lines[0].startswith(f"{not_json}: still refused: invalid_payload: ")
    assert lines[1] == f"{older}: still refused: unknown_organization: unknown org_id"
    assert summary(out) == "0 admitted, 0 already in the log, 2 still refused, 0 no body"
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    reasons = await conn.fetch("SELECT reason FROM rejected_deliveries ORDER BY id")
    assert [r["reason"] for r in reasons] == ["invalid_payload", "invalid_payload"]  # never edited


async def test_a_refusal_kept_without_its_body_cannot_be_admitted(
    app: AsyncTestClient[Any], db_url: str, conn: asyncpg.Connection, settings: Settings
) -> None:
    too_large = await refuse(app, "calls", b"x" * (settings.max_body_bytes + 1))
    assert await conn.fetchval("SELECT body FROM rejected_deliveries WHERE id = $1", too_large) is None
    status, out, err = await run_cli(db_url, "rejected", "admit", "--all", "--reason", "payload_too_large")
    assert status == 0, err
    assert (
        out.decode().splitlines()[0] == f"{too_large}: no body: refused before its body was kept (413 or 408)"
    )
    assert summary(out) == "0 admitted, 0 already in the log, 0 still refused, 1 no body"


async def test_a_refusal_for_its_header_alone_cannot_be_admitted(
    app: AsyncTestClient[Any], db_url: str, conn: asyncpg.Connection, org_id: uuid.UUID
) -> None:
    # The body is fine; the header that was refused is not kept, so the delivery cannot be checked
    # as it arrived.
    rejection = await refuse(
        app, "calls", body_for("calls", org_id), **{"Content-Type": "application/json\x01"}
    )
    status, out, err = await run_cli(db_url, "rejected", "admit", str(rejection))
    assert status == 0, err
    assert "still refused: invalid_payload: the Content-Type header holds control characters" in out.decode()
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0


async def test_two_admissions_racing_append_once(
    app: AsyncTestClient[Any], db_url: str, conn: asyncpg.Connection
) -> None:
    org = uuid.uuid4()
    bodies = [body_for("sms", org, sms_id=f"sms_race_{n}") for n in range(5)]
    for body in bodies:
        await refuse(app, "sms", body)
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Race')", org)
    results = await asyncio.gather(*(run_cli(db_url, "rejected", "admit", "--all") for _ in range(2)))
    assert [status for status, _, _ in results] == [0, 0], [err for _, _, err in results]
    logged = await conn.fetch("SELECT body FROM event_log ORDER BY id")
    assert sorted(bytes(r["body"]) for r in logged) == sorted(bodies)
    outcomes = await conn.fetch("SELECT outcome, count(*) FROM rejection_admissions GROUP BY 1 ORDER BY 1")
    assert [(r["outcome"], r["count"]) for r in outcomes] == [("admitted", 5), ("duplicate", 5)]
    assert (await verify_log(conn)).ok


async def test_an_admission_racing_a_live_redelivery_appends_once(
    app: AsyncTestClient[Any], pool: asyncpg.Pool, conn: asyncpg.Connection, settings: Settings
) -> None:
    org = uuid.uuid4()
    body = body_for("recordings", org)
    rejection = await refuse(app, "recordings", body)
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Resent')", org)
    resolver = OrgResolver(pool)
    admitted, resent = await asyncio.gather(
        admit(pool, [rejection], resolver=resolver, max_body_bytes=settings.max_body_bytes),
        app.post(PATHS["recordings"], content=body, headers=bearer()),
    )
    assert resent.status_code in (200, 202)
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1
    (admission,) = admitted
    assert admission.event_id == resent.json()["event_id"]
    assert {admission.outcome, resent.json()["status"]} in (
        {"admitted", "duplicate"},
        {"duplicate", "accepted"},
    )


async def test_a_late_admission_never_moves_a_row_backwards(
    app: AsyncTestClient[Any], pool: asyncpg.Pool, conn: asyncpg.Connection, settings: Settings
) -> None:
    org = uuid.uuid4()
    older = body_for("calls", org, call_id="call_late", status="ringing", timestamp="2024-01-20T14:00:00Z")
    rejection = await refuse(app, "calls", older)
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Late')", org)
    newer = body_for("calls", org, call_id="call_late", status="completed", timestamp="2024-01-20T15:00:00Z")
    response = await app.post(PATHS["calls"], content=newer, headers=bearer())
    assert response.status_code == 202
    await catch_up(pool)
    (admission,) = await admit(
        pool, [rejection], resolver=OrgResolver(pool), max_body_bytes=settings.max_body_bytes
    )
    assert admission.outcome == "admitted" and admission.event_id == 2
    await catch_up(pool)
    (call,) = await table_rows(conn, "calls", org)
    assert (call["status"], call["event_id"]) == ("completed", 1)


async def test_the_chain_covers_the_refusal_an_event_came_from(
    app: AsyncTestClient[Any],
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    settings: Settings,
) -> None:
    live = await app.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    assert live.status_code == 202
    before = await conn.fetchrow("SELECT hash FROM event_log WHERE id = 1")
    org = uuid.uuid4()
    rejection = await refuse(app, "sms", body_for("sms", org))
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Chained')", org)
    await admit(pool, [rejection], resolver=OrgResolver(pool), max_body_bytes=settings.max_body_bytes)
    rows = await conn.fetch("SELECT * FROM event_log ORDER BY id")
    assert [r["admitted_from"] for r in rows] == [None, rejection]
    assert rows[0]["hash"] == before["hash"]
    assert row_hash(GENESIS_HASH, rows[0]) == bytes(rows[0]["hash"])
    assert row_hash(bytes(rows[0]["hash"]), rows[1]) == bytes(rows[1]["hash"])
    # Said otherwise, the envelope would not hash the same: the link to the refusal is chained.
    assert row_hash(bytes(rows[0]["hash"]), {**rows[1], "admitted_from": None}) != bytes(rows[1]["hash"])
    assert row_hash(bytes(rows[0]["hash"]), {**rows[1], "admitted_from": rejection + 1}) != bytes(
        rows[1]["hash"]
    )
    assert (await verify_log(conn)).ok


async def test_admit_refuses_what_it_cannot_do_in_one_line(db_url: str, conn: asyncpg.Connection) -> None:
    status, _, err = await run_cli(db_url, "rejected", "admit", "999")
    assert (status, err) == (1, "mightycall-ingest: no refused delivery with id 999\n")
    status, _, err = await run_cli(db_url, "rejected", "admit")
    assert status == 1 and len(err.splitlines()) == 1 and "--all" in err
    status, _, err = await run_cli(db_url, "rejected", "admit", "1", "--kind", "sms")
    assert status == 1 and len(err.splitlines()) == 1
    assert await conn.fetchval("SELECT count(*) FROM rejection_admissions") == 0
