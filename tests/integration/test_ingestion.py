"""The ingestion function on its own, as anything other than the litestar route would call it: bytes and
the request's facts in, the outcome out, without an HTTP request anywhere."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from service.core.errors import InvalidPayload, UnknownOrganization
from service.eventlog.group_commit import Appender
from service.ingest.ingestion import Ingestion, RequestFacts
from service.ingest.organizations import OrgResolver
from tests.support.payloads import DROP, body_for

_AT = dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)


def _facts(content_type: str | None = "application/json") -> RequestFacts:
    return RequestFacts(received_at=_AT, content_type=content_type, content_length=None, request_id="req-1")


@pytest.fixture
async def ingestion(pool) -> AsyncIterator[tuple[Ingestion, list[float]]]:
    appender = Appender(pool)
    appender.start()
    waits: list[float] = []
    yield Ingestion(pool, OrgResolver(pool), appender, waits.append), waits
    await appender.close()


async def test_a_delivery_is_appended_with_its_facts_and_a_redelivery_is_a_duplicate(ingestion, conn, org_id):
    ingest, waits = ingestion
    body = body_for("calls", org_id)

    first = await ingest.ingest("calls", body, _facts())
    again = await ingest.ingest("calls", body, _facts())

    assert (first.status, first.org_id, again.status, again.event_id) == (
        "accepted",
        org_id,
        "duplicate",
        first.event_id,
    )
    row = await conn.fetchrow("SELECT body, content_type, received_at, request_id FROM event_log")
    assert (bytes(row["body"]), row["content_type"], row["received_at"], row["request_id"]) == (
        body,
        "application/json",
        _AT,
        "req-1",
    )
    assert len(waits) == 2


async def test_a_content_type_with_control_characters_is_refused_and_recorded(ingestion, conn, org_id):
    ingest, _ = ingestion
    body = body_for("sms", org_id)

    with pytest.raises(InvalidPayload):
        await ingest.ingest("sms", body, _facts("application/json\r\nX-Evil: 1"))

    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    rejected = await conn.fetchrow("SELECT kind, reason, content_type, body FROM rejected_deliveries")
    assert (rejected["kind"], rejected["reason"], rejected["content_type"], bytes(rejected["body"])) == (
        "sms",
        "invalid_payload",
        None,
        body,
    )


async def test_organizations_and_integrations_remembered_still_refuse_what_they_refused(
    ingestion, conn, org_id
):
    # Once both organizations and the integration are remembered (OrgResolver.known answers without the
    # database), a body naming an organization with another's integration is still refused.
    ingest, _ = ingestion
    other, integration = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Other')", other)
    await conn.execute("INSERT INTO integrations (id, org_id) VALUES ($1, $2)", integration, org_id)
    for n, (org, via) in enumerate(
        [(org_id, None), (other, None), (None, integration), (org_id, integration)]
    ):
        body = body_for("calls", org, call_id=f"warm_{n}", integration_id=str(via) if via else DROP)
        outcome = await ingest.ingest("calls", body, _facts())
        assert outcome.org_id == (org_id if via else org)

    mismatched = body_for("calls", other, call_id="mismatch", integration_id=str(integration))
    with pytest.raises(UnknownOrganization, match="different organizations"):
        await ingest.ingest("calls", mismatched, _facts())
    unknown = body_for("calls", uuid.uuid4(), call_id="unknown")
    with pytest.raises(UnknownOrganization, match="unknown org_id"):
        await ingest.ingest("calls", unknown, _facts())
    nobody = body_for("calls", None, call_id="nobody")
    with pytest.raises(UnknownOrganization, match="no organization context"):
        await ingest.ingest("calls", nobody, _facts())
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 4
