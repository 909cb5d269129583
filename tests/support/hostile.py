"""What every refusal must look like, what the database must not have gained, and the real server
(uvicorn with serve's options) in-process, for what only a socket can send."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg
import uvicorn
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.server.serve import UVICORN_OPTIONS
from tests.support.http import SECOND_SECRET, SECRET

__all__ = [
    "ALL_TOKEN",
    "ORG_TOKEN",
    "SECRETS",
    "assert_error_shape",
    "assert_safe",
    "audited_client",
    "counts",
    "raw_exchange",
    "raw_exchange_closed",
    "served",
]

ALL_TOKEN = "audit-hostile-all-7f3a9c"
ORG_TOKEN = "audit-hostile-org-51be02"


@contextlib.asynccontextmanager
async def audited_client(
    settings: Settings, db_url: str, org_id: uuid.UUID
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The real app with the audit API (ALL_TOKEN, and ORG_TOKEN for `org_id`); no live projector (the
    tests read the log, not projections)."""
    configured = dataclasses.replace(
        settings, audit_tokens=((ALL_TOKEN, None), (ORG_TOKEN, org_id)), run_projector=False
    )
    async with AsyncTestClient(app=create_app(configured, db_url)) as client:
        yield client


SECRETS = (SECRET, SECOND_SECRET, ALL_TOKEN, ORG_TOKEN)
"""Credentials the test apps hold: none may ever appear in an answer, a stored row or a log line."""


def assert_safe(status: int, text: str, *, extra_secrets: Iterable[str] = ()) -> None:
    """Never a 5xx, never a traceback, never a credential; a 4xx is the contract's error shape."""
    assert status < 500, (status, text[:500])
    assert "Traceback" not in text, text[:500]
    for secret in (*SECRETS, *extra_secrets):
        assert secret not in text
    if 400 <= status < 500:
        assert_error_shape(text)


def assert_error_shape(text: str) -> dict[str, Any]:
    body = json.loads(text)
    assert isinstance(body, dict), text[:500]
    assert set(body) == {"error", "details"}, text[:500]
    assert isinstance(body["error"], str) and body["error"], text[:500]
    assert isinstance(body["details"], str) and body["details"], text[:500]
    return body


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """(events in the log, rejected deliveries recorded)."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM event_log) AS events,"
        " (SELECT count(*) FROM rejected_deliveries) AS rejected"
    )
    assert row is not None
    return row["events"], row["rejected"]


@contextlib.asynccontextmanager
async def served(app: Any, **options: Any) -> AsyncIterator[int]:
    """`app` behind uvicorn as `serve` runs it (service.server.serve.UVICORN_OPTIONS, `options` overriding),
    on a free loopback port, in this event loop. Yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, **{**UVICORN_OPTIONS, **options}))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise AssertionError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        async with asyncio.timeout(20):
            await task
        sock.close()


async def raw_exchange(port: int, request: bytes, *, wait_s: float = 10) -> bytes:
    """Sends `request` as is, then reads until the server closes or `wait_s` pass."""
    return (await raw_exchange_closed(port, request, wait_s=wait_s))[0]


async def raw_exchange_closed(port: int, request: bytes, *, wait_s: float = 10) -> tuple[bytes, bool]:
    """`raw_exchange`, and whether the server closed the connection (rather than `wait_s` passing)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = False
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(request)
            await writer.drain()
        chunks = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                try:
                    while chunk := await reader.read(65536):
                        chunks.append(chunk)
                except ConnectionError:
                    pass
                closed = True
        return b"".join(chunks), closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
