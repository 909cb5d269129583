"""A request id for every HTTP request: in the response's X-Request-Id, in the delivery's log line, and
in the event's envelope (or its rejection), so that a log line and a log row can be joined.

A well-formed X-Request-Id from the caller (a load balancer usually sets one) is kept, so one id follows
the request through every hop; anything else is replaced, since it ends up in logs and in the chain.

For what litestar answers, the id is made on first use and kept in the scope's state; the header is
added by a `before_send` hook, which litestar calls for every response, its own error answers included.
A middleware would do the same, but litestar then puts a second exception handler around every route.
The webhooks' own ASGI handler (service/web/webhooks.py), which litestar never sees, makes the id with
`request_id_from` and puts the header in each of its answers itself.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from litestar.types import Message, Scope

__all__ = ["HEADER", "add_request_id", "request_id", "request_id_from"]

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_STATE_KEY = "request_id"
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(scope: Scope) -> str:
    """The request's id: the caller's if well-formed, else a new one; the same on every call."""
    state = scope["state"]
    found: str | None = state.get(_STATE_KEY)
    if found is None:
        found = state[_STATE_KEY] = request_id_from(_from_caller(scope["headers"]))
    return found


def request_id_from(offered: bytes | None) -> str:
    """`offered` (the caller's first X-Request-Id, None without one) if well-formed, else a new id."""
    if offered is not None and _WELL_FORMED.fullmatch(offered):
        return offered.decode("ascii")
    return secrets.token_hex(16)


async def add_request_id(message: Message, scope: Scope) -> None:
    """litestar `before_send` hook: the id in the head of every response."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", ()), (_HEADER_BYTES, request_id(scope).encode())]


def _from_caller(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    return next((value for name, value in headers if name == _HEADER_BYTES), None)
