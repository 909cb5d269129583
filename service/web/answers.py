"""What a client is told when something goes wrong: the status of each IngestError, the headers that go
with a status, the `{"error", "details"}` body, and which unexpected errors are the database's "retry
later" (a 503) rather than a bug (a 500).

One table for both ways a request is answered: litestar's exception handlers (service/app.py) and the
webhooks' own ASGI handler (service/web/webhooks.py), so that an error reads the same whichever of the
two answered it.
"""

from __future__ import annotations

import logging

import msgspec

from service.core.errors import (
    DatabaseUnavailable,
    Forbidden,
    IngestError,
    InvalidPayload,
    InvalidQuery,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    TooManyRequests,
    Unauthorized,
    UnknownOrganization,
)
from service.database.pool import cannot_write_now, is_unavailable

__all__ = ["HEADERS", "error_body", "log_unexpected", "retry_later", "status_of"]

_log = logging.getLogger("mightycall.app")
_encode = msgspec.json.Encoder().encode

_STATUS = {
    Unauthorized: 401,
    Forbidden: 403,
    PayloadTooLarge: 413,
    RequestTimeout: 408,
    TooManyRequests: 429,
    InvalidPayload: 400,
    InvalidQuery: 400,
    UnknownOrganization: 400,
    NotFound: 404,
    DatabaseUnavailable: 503,
    Overloaded: 503,
}

HEADERS = {
    401: {"WWW-Authenticate": "Bearer"},
    # The rest of a body that was too slow to come is not waited for.
    408: {"Connection": "close"},
    429: {"Retry-After": "5"},
    503: {"Retry-After": "5"},
}
"""Headers that go with an error's status."""


def status_of(exc: IngestError) -> int:
    return next((_STATUS[cls] for cls in type(exc).__mro__ if cls in _STATUS), 500)


def error_body(error: str, details: str) -> bytes:
    return _encode({"error": error, "details": details})


def retry_later(exc: Exception) -> DatabaseUnavailable | None:
    """The error a client is told of when `exc` is the database being unreachable or unable to serve
    now (it is worth retrying), None when it is anything else (a bug)."""
    if is_unavailable(exc):
        return DatabaseUnavailable("the database is not reachable; retry later")
    if cannot_write_now(exc):
        _log.error("database refused a statement", extra={"fields": {"error": type(exc).__name__}})
        return DatabaseUnavailable("the database cannot serve this now; retry later")
    return None


def log_unexpected(exc: Exception, path: str, request_id: str | None) -> None:
    _log.error("unexpected error", exc_info=exc, extra={"fields": {"path": path, "request_id": request_id}})
