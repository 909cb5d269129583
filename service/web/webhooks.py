"""The four webhook endpoints: auth -> size limit -> decode/validate -> organization -> append."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request, Response, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler

from service.core.errors import (
    IngestError,
    InvalidPayload,
    PayloadTooLarge,
    RequestTimeout,
    UnknownOrganization,
)
from service.core.payloads import KINDS, decode_delivery
from service.eventlog.append import Appended, Delivery
from service.eventlog.group_commit import Appender
from service.ingest.organizations import OrgResolver
from service.ingest.rejections import record_rejection
from service.web.auth import BearerAuth
from service.web.metrics import Metrics
from service.web.request_ids import request_id as request_id_of

__all__ = ["BODY_TIMEOUT_S", "WEBHOOK_PATHS", "Ingestion", "webhook_handlers"]

WEBHOOK_PATHS = {
    "calls": "/functions/v1/mightycall-calls-webhook",
    "sms": "/functions/v1/mightycall-sms-webhook",
    "recordings": "/functions/v1/mightycall-recordings-webhook",
    "reports": "/functions/v1/mightycall-reports-webhook",
}

_log = logging.getLogger("mightycall.delivery")
_encode = msgspec.json.Encoder().encode
_MAX_CONTENT_TYPE = 200
# Control characters (CR, LF, NUL...) have no place in a header: PostgreSQL text cannot hold NUL, and
# /audit/events/{id}/raw sends the content type back as a header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

BODY_TIMEOUT_S = 10.0
"""How long a whole body may take to arrive once the headers have: a sender trickling it holds a
request (and its memory) no longer than this, then gets a 408. A 1 MiB body needs 100 KB/s."""


@dataclass
class Ingestion:
    """What the handlers need; the pool, resolver and appender are set by the app's lifespan."""

    auth: BearerAuth
    max_body_bytes: int
    body_timeout_s: float = BODY_TIMEOUT_S
    pool: asyncpg.Pool | None = None
    resolver: OrgResolver | None = None
    appender: Appender | None = None
    metrics: Metrics = field(default_factory=Metrics)

    async def receive(self, kind: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        started = time.perf_counter()
        request_id = request_id_of(request.scope)
        try:
            appended, org_id = await self._ingest(kind, request, request_id)
        except IngestError as exc:
            _log_delivery(kind, started, outcome=exc.reason, request_id=request_id)
            self.metrics.deliveries.labels(kind, exc.reason).inc()
            raise
        except Exception:
            self.metrics.deliveries.labels(kind, "internal_error").inc()
            raise
        outcome = "duplicate" if appended.duplicate else "accepted"
        _log_delivery(
            kind,
            started,
            outcome=outcome,
            request_id=request_id,
            event_id=appended.event_id,
            org_id=str(org_id),
        )
        self.metrics.deliveries.labels(kind, outcome).inc()
        return Response(
            _encode({"status": outcome, "event_id": appended.event_id}),
            status_code=200 if appended.duplicate else 202,
            media_type="application/json",
        )

    async def _ingest(
        self, kind: str, request: Request[Any, Any, Any], request_id: str | None
    ) -> tuple[Appended, UUID]:
        # Before the body is read: an unauthenticated flood costs a header check, nothing more.
        self.auth.check(request.headers.getall("authorization", []))
        assert self.resolver is not None and self.appender is not None
        received_at = dt.datetime.now(dt.UTC)
        content_type = request.headers.get("content-type")
        bad_content_type = content_type is not None and _CONTROL.search(content_type) is not None
        if content_type is not None:
            content_type = None if bad_content_type else content_type[:_MAX_CONTENT_TYPE]
        body: bytes | None = None
        try:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    body = await request.body()
            except RequestEntityTooLarge:
                raise PayloadTooLarge(f"body is over the limit of {self.max_body_bytes} bytes") from None
            except TimeoutError:
                raise RequestTimeout(f"the body did not arrive within {self.body_timeout_s:g} s") from None
            if bad_content_type:
                raise InvalidPayload("the Content-Type header holds control characters")
            payload = decode_delivery(kind, body)
            org_id = await self.resolver.resolve(payload.org_id, payload.integration_id)
        except (PayloadTooLarge, RequestTimeout, InvalidPayload, UnknownOrganization) as exc:
            await self._reject(kind, received_at, exc, content_type, body, request, request_id)
            raise
        queued = time.perf_counter()
        try:
            appended = await self.appender.append(
                Delivery(
                    kind=kind,
                    event_type=payload.event,
                    org_id=org_id,
                    external_id=payload.external_id,
                    content_type=content_type,
                    body=body,
                    body_sha256=hashlib.sha256(body).digest(),
                    received_at=received_at,
                    request_id=request_id,
                )
            )
        finally:
            self.metrics.append_seconds.observe(time.perf_counter() - queued)
        return appended, org_id

    async def _reject(
        self,
        kind: str,
        received_at: dt.datetime,
        error: IngestError,
        content_type: str | None,
        body: bytes | None,
        request: Request[Any, Any, Any],
        request_id: str | None,
    ) -> None:
        assert self.pool is not None
        await record_rejection(
            self.pool,
            kind=kind,
            received_at=received_at,
            error=error,
            content_type=content_type,
            body_size=len(body) if body is not None else request.content_length,
            body=body,
            request_id=request_id,
        )


def _log_delivery(kind: str, started: float, *, outcome: str, **fields: object) -> None:
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    _log.info(
        "delivery", extra={"fields": {"kind": kind, "outcome": outcome, "latency_ms": latency_ms, **fields}}
    )


def webhook_handlers(ingestion: Ingestion) -> list[HTTPRouteHandler]:
    return [_handler(kind, ingestion) for kind in KINDS]


def _handler(kind: str, ingestion: Ingestion) -> HTTPRouteHandler:
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await ingestion.receive(kind, request)

    return post(
        WEBHOOK_PATHS[kind],
        name=f"{kind}-webhook",
        summary=f"Receive a MightyCall {kind} webhook",
        request_max_body_size=ingestion.max_body_bytes,
        status_code=202,
    )(receive)
