"""A bare durable receiver: the ceiling app plus group commit, and nothing else.

The same stack answering 202 after decoding the body, but only once the body is committed: concurrent
deliveries share one INSERT and one commit, as `serve`'s appender does. No authentication, no checks
beyond the payload type, no organization, no deduplication, no hash chain, no log line, no metrics, no
request id, no projector. Between the HTTP ceiling and `serve`, it says how much of the distance is
durability itself and how much the service's own work per webhook.

    DATABASE_URL=... uvicorn bench.bare_durable_app:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response, post

from service.core.payloads import decode
from service.web.webhooks import WEBHOOK_PATHS

_ACCEPTED = b'{"status":"accepted","event_id":0}'
_TABLE = "CREATE TABLE IF NOT EXISTS bench_bare_log (id bigserial PRIMARY KEY, kind text, body bytea)"
_INSERT = "INSERT INTO bench_bare_log (kind, body) SELECT * FROM unnest($1::text[], $2::bytea[])"
_MAX_BATCH = 256

_queue: asyncio.Queue[tuple[str, bytes, asyncio.Future[None]]] = asyncio.Queue()


async def _commit_batches(conn: asyncpg.Connection) -> None:
    while True:
        batch = [await _queue.get()]
        while len(batch) < _MAX_BATCH and not _queue.empty():
            batch.append(_queue.get_nowait())
        try:
            await conn.execute(_INSERT, [kind for kind, _, _ in batch], [body for _, body, _ in batch])
        except Exception as exc:
            for _, _, done in batch:
                done.set_exception(exc)
            continue
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)


@asynccontextmanager
async def _lifespan(_: Litestar) -> AsyncIterator[None]:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"], server_settings={"synchronous_commit": "on"})
    await conn.execute(_TABLE)
    worker = asyncio.create_task(_commit_batches(conn))
    try:
        yield
    finally:
        worker.cancel()
        await conn.close()


async def commit(kind: str, body: bytes) -> None:
    """Decode, then wait for the body's group commit."""
    decode(kind, body)
    committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _queue.put_nowait((kind, body, committed))
    await committed


def _handler(kind: str) -> Any:
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        await commit(kind, await request.body())
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    return post(WEBHOOK_PATHS[kind], name=f"{kind}-bare-durable")(receive)


app = Litestar(
    route_handlers=[_handler(kind) for kind in WEBHOOK_PATHS],
    lifespan=[_lifespan],
    logging_config=None,
    openapi_config=None,
)
