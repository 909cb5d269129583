"""The four webhook endpoints: auth -> size limit -> decode/validate -> organization -> append."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Request, Response, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler

from service.appender import Appender
from service.auth import BearerAuth
from service.errors import IngestError, InvalidPayload, PayloadTooLarge, UnknownOrganization
from service.eventlog import Appended, Delivery
from service.orgs import OrgResolver
from service.payloads import KINDS, decode
from service.rejections import record_rejection

__all__ = ["WEBHOOK_PATHS", "Ingestion", "webhook_handlers"]

WEBHOOK_PATHS = {
    "calls": "/functions/v1/mightycall-calls-webhook",
    "sms": "/functions/v1/mightycall-sms-webhook",
    "recordings": "/functions/v1/mightycall-recordings-webhook",
    "reports": "/functions/v1/mightycall-reports-webhook",
}

_log = logging.getLogger("mightycall.delivery")
_encode = msgspec.json.Encoder().encode
_MAX_CONTENT_TYPE = 200


@dataclass
class Ingestion:
    """What the handlers need; the pool, resolver and appender are set by the app's lifespan."""

    auth: BearerAuth
    max_body_bytes: int
    pool: asyncpg.Pool | None = None
    resolver: OrgResolver | None = None
    appender: Appender | None = None

    async def receive(self, kind: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        started = time.perf_counter()
        try:
            appended, org_id = await self._ingest(kind, request)
        except IngestError as exc:
            _log_delivery(kind, started, outcome=exc.reason)
            raise
        outcome = "duplicate" if appended.duplicate else "accepted"
        _log_delivery(kind, started, outcome=outcome, event_id=appended.event_id, org_id=str(org_id))
        return Response(
            _encode({"status": outcome, "event_id": appended.event_id}),
            status_code=200 if appended.duplicate else 202,
            media_type="application/json",
        )

    async def _ingest(self, kind: str, request: Request[Any, Any, Any]) -> tuple[Appended, UUID]:
        # Before the body is read: an unauthenticated flood costs a header check, nothing more.
        self.auth.check(request.headers.getall("authorization", []))
        assert self.resolver is not None and self.appender is not None
        received_at = dt.datetime.now(dt.UTC)
        content_type = request.headers.get("content-type")
        if content_type is not None:
            content_type = content_type[:_MAX_CONTENT_TYPE]
        body: bytes | None = None
        try:
            try:
                body = await request.body()
            except RequestEntityTooLarge:
                raise PayloadTooLarge(f"body is over the limit of {self.max_body_bytes} bytes") from None
            payload = decode(kind, body)
            org_id = await self.resolver.resolve(payload.org_id, payload.integration_id)
        except (PayloadTooLarge, InvalidPayload, UnknownOrganization) as exc:
            await self._reject(kind, received_at, exc, content_type, body, request)
            raise
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
            )
        )
        return appended, org_id

    async def _reject(
        self,
        kind: str,
        received_at: dt.datetime,
        error: IngestError,
        content_type: str | None,
        body: bytes | None,
        request: Request[Any, Any, Any],
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
