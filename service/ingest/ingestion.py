"""Ingesting one webhook delivery: its kind, the bytes as they arrived and the request's facts in, the
outcome out (accepted or a duplicate, with its position in the log), or an IngestError.

Nothing here knows HTTP or litestar: the route (service/web/webhooks.py) checks the secret, reads the
headers and the body and hands them over, so anything else can ingest the same way (a test, a tool).
A delivery refused for what it carries is recorded in `rejections` before the error is raised.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from service.core.errors import CONTENT_TYPE_REFUSED, IngestError, InvalidPayload, UnknownOrganization
from service.core.payloads import decode_delivery
from service.eventlog.append import Delivery
from service.eventlog.group_commit import Appender
from service.ingest.organizations import OrgResolver
from service.ingest.rejections import record_rejection

__all__ = ["Ingestion", "Outcome", "RequestFacts", "check"]

_MAX_CONTENT_TYPE = 200
# Control characters (CR, LF, NUL...) have no place in a header: PostgreSQL text cannot hold NUL, and
# /audit/events/{id}/raw sends the content type back as a header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What ingestion needs to know of the request besides its body."""

    received_at: dt.datetime
    content_type: str | None
    """The Content-Type header as sent, None without one."""
    content_length: int | None
    """As declared: the size recorded for a delivery refused before its body was whole."""
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: int
    org_id: UUID
    duplicate: bool

    @property
    def status(self) -> str:
        return "duplicate" if self.duplicate else "accepted"


@dataclass(frozen=True, slots=True)
class Ingestion:
    pool: asyncpg.Pool
    resolver: OrgResolver
    appender: Appender
    observe_append: Callable[[float], None] = lambda seconds: None
    """Told how long each append waited for its commit (or its failure)."""

    async def ingest(self, kind: str, body: bytes, facts: RequestFacts) -> Outcome:
        try:
            delivery = await check(kind, body, facts, self.resolver)
        except (InvalidPayload, UnknownOrganization) as exc:
            await self.refuse(kind, facts, exc, body)
            raise
        queued = time.perf_counter()
        try:
            appended = await self.appender.append(delivery)
        finally:
            self.observe_append(time.perf_counter() - queued)
        return Outcome(event_id=appended.event_id, org_id=delivery.org_id, duplicate=appended.duplicate)

    async def refuse(
        self, kind: str, facts: RequestFacts, error: IngestError, body: bytes | None = None
    ) -> None:
        """Records a delivery refused for what it carries; `body` is None when it never arrived whole."""
        await record_rejection(
            self.pool,
            kind=kind,
            received_at=facts.received_at,
            error=error,
            content_type=_content_type(facts.content_type)[0],
            body_size=len(body) if body is not None else facts.content_length,
            body=body,
            request_id=facts.request_id,
        )


async def check(kind: str, body: bytes, facts: RequestFacts, resolver: OrgResolver) -> Delivery:
    """The delivery a body that arrived whole makes, or the InvalidPayload or UnknownOrganization it gets:
    the checks a webhook meets at the door, shared with `rejected admit` (service/ingest/redrive.py),
    which puts a refused body through them again as if it arrived now."""
    content_type, bad_content_type = _content_type(facts.content_type)
    if bad_content_type:
        raise InvalidPayload(CONTENT_TYPE_REFUSED)
    payload = decode_delivery(kind, body)
    org_id = resolver.known(payload.org_id, payload.integration_id) or await resolver.resolve(
        payload.org_id, payload.integration_id
    )
    return Delivery(
        kind=kind,
        event_type=payload.event,
        org_id=org_id,
        external_id=payload.external_id,
        content_type=content_type,
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
        received_at=facts.received_at,
        request_id=facts.request_id,
    )


def _content_type(header: str | None) -> tuple[str | None, bool]:
    """The content type to keep (None when it holds control characters), and whether it did."""
    if header is None:
        return None, False
    if _CONTROL.search(header) is not None:
        return None, True
    return header[:_MAX_CONTENT_TYPE], False
