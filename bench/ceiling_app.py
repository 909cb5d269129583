"""The HTTP ceiling: the same stack (litestar, msgspec, the same payload types) answering 202 after
decoding the body, with no database. No receiver of these webhooks in Python can go faster here.

    uvicorn bench.ceiling_app:app
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, post

from service.core.payloads import decode
from service.web.webhooks import WEBHOOK_PATHS

_ACCEPTED = b'{"status":"accepted","event_id":0}'


async def accept(kind: str, body: bytes) -> None:
    decode(kind, body)


def _handler(kind: str) -> Any:
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        await accept(kind, await request.body())
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    return post(WEBHOOK_PATHS[kind], name=f"{kind}-ceiling")(receive)


app = Litestar(
    route_handlers=[_handler(kind) for kind in WEBHOOK_PATHS], logging_config=None, openapi_config=None
)
