"""A request id for every HTTP request: in the response's X-Request-Id, in the delivery's log line, and
in the event's envelope (or its rejection), so that a log line and a log row can be joined.

A well-formed X-Request-Id from the caller (a load balancer usually sets one) is kept, so one id follows
the request through every hop; anything else is replaced, since it ends up in logs and in the chain.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "request_id_middleware"]

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        request_id = _from_caller(scope["headers"]) or secrets.token_hex(16)
        # litestar keeps Request.state in this dict, created before any middleware runs.
        scope["state"]["request_id"] = request_id
        header = (_HEADER_BYTES, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await app(scope, receive, send_with_id)

    return with_request_id


def _from_caller(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == _HEADER_BYTES:
            return value.decode("ascii") if _WELL_FORMED.fullmatch(value) else None
    return None
