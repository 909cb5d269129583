"""The four webhook endpoints: auth -> size limit -> body -> ingestion (service/ingest/ingestion.py).

The route is an adapter: it checks the secret before the body is read, reads the body within its time
and size limits, hands the bytes and the request's facts to ingestion, and turns the outcome into the
answer, a log line and the metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler

from service.core.errors import IngestError, PayloadTooLarge, RequestTimeout
from service.core.payloads import KINDS
from service.ingest.ingestion import Ingestion, Outcome, RequestFacts
from service.web.auth import BearerAuth
from service.web.metrics import Metrics
from service.web.request_ids import request_id as request_id_of

__all__ = ["BODY_TIMEOUT_S", "WEBHOOK_PATHS", "Webhooks", "webhook_handlers"]

WEBHOOK_PATHS = {
    "calls": "/functions/v1/mightycall-calls-webhook",
    "sms": "/functions/v1/mightycall-sms-webhook",
    "recordings": "/functions/v1/mightycall-recordings-webhook",
    "reports": "/functions/v1/mightycall-reports-webhook",
}

_log = logging.getLogger("mightycall.delivery")
_encode = msgspec.json.Encoder().encode

BODY_TIMEOUT_S = 10.0
"""How long a whole body may take to arrive once the headers have: a sender trickling it holds a
request (and its memory) no longer than this, then gets a 408. A 1 MiB body needs 100 KB/s."""


@dataclass
class Webhooks:
    """What the routes need; `ingestion` is set by the app's lifespan, once the pool is open."""

    auth: BearerAuth
    max_body_bytes: int
    body_timeout_s: float = BODY_TIMEOUT_S
    ingestion: Ingestion | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def pool(self) -> asyncpg.Pool | None:
        return self.ingestion.pool if self.ingestion is not None else None

    async def receive(self, kind: str, request: Request[Any, Any, Any]) -> Response[bytes]:
        started = time.perf_counter()
        request_id = request_id_of(request.scope)
        try:
            outcome = await self._ingest(kind, request, request_id)
        except IngestError as exc:
            _log_delivery(kind, started, outcome=exc.reason, request_id=request_id)
            self.metrics.deliveries.labels(kind, exc.reason).inc()
            raise
        except Exception:
            self.metrics.deliveries.labels(kind, "internal_error").inc()
            raise
        _log_delivery(
            kind,
            started,
            outcome=outcome.status,
            request_id=request_id,
            event_id=outcome.event_id,
            org_id=str(outcome.org_id),
        )
        self.metrics.deliveries.labels(kind, outcome.status).inc()
        return Response(
            _encode({"status": outcome.status, "event_id": outcome.event_id}),
            status_code=200 if outcome.duplicate else 202,
            media_type="application/json",
        )

    async def _ingest(self, kind: str, request: Request[Any, Any, Any], request_id: str | None) -> Outcome:
        # Before the body is read: an unauthenticated flood costs a header check, nothing more.
        self.auth.check(request.headers.getall("authorization", []))
        assert self.ingestion is not None
        facts = RequestFacts(
            received_at=dt.datetime.now(dt.UTC),
            content_type=request.headers.get("content-type"),
            content_length=request.content_length,
            request_id=request_id,
        )
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body = await request.body()
        except RequestEntityTooLarge:
            error: IngestError = PayloadTooLarge(f"body is over the limit of {self.max_body_bytes} bytes")
        except TimeoutError:
            error = RequestTimeout(f"the body did not arrive within {self.body_timeout_s:g} s")
        else:
            return await self.ingestion.ingest(kind, body, facts)
        await self.ingestion.refuse(kind, facts, error)
        raise error


def _log_delivery(kind: str, started: float, *, outcome: str, **fields: object) -> None:
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    _log.info(
        "delivery", extra={"fields": {"kind": kind, "outcome": outcome, "latency_ms": latency_ms, **fields}}
    )


def webhook_handlers(webhooks: Webhooks) -> list[HTTPRouteHandler]:
    return [_handler(kind, webhooks) for kind in KINDS]


def _handler(kind: str, webhooks: Webhooks) -> HTTPRouteHandler:
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await webhooks.receive(kind, request)

    return post(
        WEBHOOK_PATHS[kind],
        name=f"{kind}-webhook",
        summary=f"Receive a MightyCall {kind} webhook",
        request_max_body_size=webhooks.max_body_bytes,
        status_code=202,
    )(receive)
