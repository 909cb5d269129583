"""The benchmark's receivers in the service's own style: a raw ASGI handler for the four webhook POSTs
in front of their litestar app (service/web/front.py's Front), so that the service is compared with
ceilings built the way it is, as well as with the litestar-only ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.types import Receive, Scope, Send

from service.core.config import DEFAULT_MAX_BODY_BYTES
from service.web.bodies import read_body
from service.web.front import Front

_ACCEPTED = b'{"status":"accepted","event_id":0}'
_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_ACCEPTED))]


def raw_style(app: Litestar, accept: Callable[[str, bytes], Awaitable[None]]) -> Front:
    """`app` with its webhook POSTs answered 202 by a raw handler once `accept(kind, body)` returns."""

    async def answer(kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        await accept(kind, await read_body(receive, DEFAULT_MAX_BODY_BYTES))
        await send({"type": "http.response.start", "status": 202, "headers": _HEAD})
        await send({"type": "http.response.body", "body": _ACCEPTED})

    return Front(app, answer)
