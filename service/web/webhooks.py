"""The four webhook endpoints: auth -> size limit -> body -> ingestion (service/ingest/ingestion.py) ->
the answer, one log line and the metrics.

They are answered by a plain ASGI handler, `Webhooks.answer`, not by a litestar route:
service/web/front.py hands it every POST that litestar would route to one of these paths. A webhook
needs four headers, its body and one of a few JSON answers, and litestar's routing, signature parsing,
Request, Response, exception middleware and before_send hook around that cost more CPU per webhook than
the handler's own work. Litestar keeps the four routes declared (`webhook_routes`), so that the OpenAPI
schema lists them and another method on these paths gets litestar's 405. Errors are answered from the
table litestar's exception handlers use too (service/web/answers.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response, post
from litestar._asgi.utils import is_valid_host  # litestar's own rule, so that the two cannot differ
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from service.core.errors import IngestError, PayloadTooLarge, RequestTimeout
from service.core.payloads import KINDS
from service.ingest.ingestion import Ingestion, Outcome, RequestFacts
from service.web.answers import HEADERS, error_body, log_unexpected, retry_later, status_of
from service.web.auth import BearerAuth
from service.web.bodies import read_body, too_large
from service.web.deadlines import Deadlines
from service.web.metrics import Metrics
from service.web.request_ids import HEADER, request_id_from

__all__ = ["BODY_TIMEOUT_S", "WEBHOOK_PATHS", "Webhooks", "webhook_routes"]

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
request (and its memory) no longer than this (and up to a second more: service/web/deadlines.py), then
gets a 408. A 1 MiB body needs 100 KB/s."""

_Headers = Sequence[tuple[bytes, bytes]]
_JSON = (b"content-type", b"application/json")
_REQUEST_ID = HEADER.encode()
_ERROR_HEADERS: dict[int, _Headers] = {
    status: [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    for status, headers in HEADERS.items()
}


@dataclass
class Webhooks:
    """What the endpoints need; `ingestion` is set by the app's lifespan, once the pool is open."""

    auth: BearerAuth
    max_body_bytes: int
    body_timeout_s: float = BODY_TIMEOUT_S
    ingestion: Ingestion | None = None
    metrics: Metrics = field(default_factory=Metrics)
    _body_deadlines: Deadlines = field(init=False)

    def __post_init__(self) -> None:
        self._body_deadlines = Deadlines(self.body_timeout_s)

    @property
    def pool(self) -> asyncpg.Pool | None:
        return self.ingestion.pool if self.ingestion is not None else None

    async def answer(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI: one POST to `kind`'s endpoint, from its head to its answer."""
        started = time.perf_counter()
        authorization, content_type, content_length, offered_id, host = _read_head(scope["headers"])
        request_id = request_id_from(offered_id)
        if host is not None and not is_valid_host(host):
            # What litestar answers before routing any request, these included.
            await _send(send, 400, error_body("http_error", "Invalid host header"), request_id)
            return
        try:
            outcome = await self._ingest(
                kind, receive, authorization, content_type, content_length, request_id
            )
        except IngestError as exc:
            _log_delivery(kind, started, exc.reason, request_id)
            self.metrics.delivered(kind, exc.reason)
            status = status_of(exc)
            body = error_body(exc.reason, exc.details)
            await _send(send, status, body, request_id, _ERROR_HEADERS.get(status, ()))
            return
        except Exception as exc:
            self.metrics.delivered(kind, "internal_error")
            status, body, headers = _unexpected(exc, scope["path"], request_id)
            await _send(send, status, body, request_id, headers)
            return
        _log_delivery(kind, started, outcome.status, request_id, outcome)
        self.metrics.delivered(kind, outcome.status)
        body = _encode({"status": outcome.status, "event_id": outcome.event_id})
        await _send(send, 200 if outcome.duplicate else 202, body, request_id)

    async def _ingest(
        self,
        kind: str,
        receive: Receive,
        authorization: list[str],
        content_type: bytes | None,
        content_length: bytes | None,
        request_id: str,
    ) -> Outcome:
        # Before the body is read: an unauthenticated flood costs a header check, nothing more.
        self.auth.check(authorization)
        assert self.ingestion is not None
        declared = _declared_length(content_length)
        facts = RequestFacts(
            received_at=dt.datetime.now(dt.UTC),
            content_type=content_type.decode("latin-1") if content_type is not None else None,
            content_length=declared,
            request_id=request_id,
        )
        error: IngestError
        try:
            if declared is not None and declared > self.max_body_bytes:
                raise too_large(self.max_body_bytes)
            with self._body_deadlines:
                body = await read_body(receive, self.max_body_bytes)
        except PayloadTooLarge as exc:
            error = exc
        except TimeoutError:
            error = RequestTimeout(f"the body did not arrive within {self.body_timeout_s:g} s")
        else:
            return await self.ingestion.ingest(kind, body, facts)
        await self.ingestion.refuse(kind, facts, error)
        raise error


def _read_head(
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[list[str], bytes | None, bytes | None, bytes | None, bytes | None]:
    """In one pass: every Authorization header, then the first Content-Type, Content-Length,
    X-Request-Id and Host (ASGI servers give header names in lower case)."""
    authorization: list[str] = []
    content_type = content_length = request_id = host = None
    for name, value in headers:
        if name == b"authorization":
            authorization.append(value.decode("latin-1"))
        elif name == b"content-type":
            content_type = value if content_type is None else content_type
        elif name == b"content-length":
            content_length = value if content_length is None else content_length
        elif name == _REQUEST_ID:
            request_id = value if request_id is None else request_id
        elif name == b"host":
            host = value if host is None else host
    return authorization, content_type, content_length, request_id, host


def _declared_length(header: bytes | None) -> int | None:
    if header is None:
        return None
    try:
        return int(header)
    except ValueError:
        # As litestar words it: ASGI servers refuse such a head before any app sees it.
        raise ClientException(f"Invalid content-length: {header.decode('latin-1')!r}") from None


async def _send(send: Send, status: int, body: bytes, request_id: str, headers: _Headers = ()) -> None:
    head = [*headers, _JSON, (b"content-length", b"%d" % len(body)), (_REQUEST_ID, request_id.encode())]
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": status, "headers": head}
    await send(start)
    whole: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(whole)


def _unexpected(exc: Exception, path: str, request_id: str) -> tuple[int, bytes, _Headers]:
    """The answer to an error that is not an IngestError, as litestar's exception handlers give it."""
    if isinstance(exc, HTTPException):
        return exc.status_code, error_body("http_error", str(exc.detail)), ()
    unavailable = retry_later(exc)
    if unavailable is not None:
        status = status_of(unavailable)
        body = error_body(unavailable.reason, unavailable.details)
        return status, body, _ERROR_HEADERS.get(status, ())
    log_unexpected(exc, path, request_id)
    return 500, error_body("internal_error", "unexpected error; it has been logged"), ()


def _log_delivery(
    kind: str, started: float, outcome: str, request_id: str, done: Outcome | None = None
) -> None:
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    fields: dict[str, object] = {
        "kind": kind,
        "outcome": outcome,
        "latency_ms": latency_ms,
        "request_id": request_id,
    }
    if done is not None:
        fields["event_id"] = done.event_id
        fields["org_id"] = done.org_id  # a UUID: the JSON encoder writes it, faster than str()
    _log.info("delivery", extra={"fields": fields})


def webhook_routes() -> list[HTTPRouteHandler]:
    """The four endpoints as litestar knows them: declared, so that the OpenAPI schema lists them and
    another method on their paths gets litestar's 405, but never called, since service/web/front.py
    answers every POST that litestar would route to them."""
    return [_declared(kind) for kind in KINDS]


def _declared(kind: str) -> HTTPRouteHandler:
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        raise RuntimeError(f"{request.url.path} reached litestar: service/web/front.py answers it")

    return post(
        WEBHOOK_PATHS[kind],
        name=f"{kind}-webhook",
        summary=f"Receive a MightyCall {kind} webhook",
        status_code=202,
    )(receive)
