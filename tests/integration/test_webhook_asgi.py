"""The webhooks' own ASGI path (service/web/front.py, service/web/webhooks.py): what it must do as litestar
did, where no other test reaches. Some requests are handed to the app as ASGI messages directly, since
no HTTP client sends them (a body that never comes, a bad Content-Length, a client gone mid-body), and
so that a test can count what the app read of a body."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.core.config import Settings
from service.web.front import Front
from tests.support.hostile import assert_error_shape, counts
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, body_for

LIMIT = 10_000
CHUNK = 1_000
GENERATED = re.compile(r"[0-9a-f]{32}")
AUTH = (b"authorization", f"Bearer {SECRET}".encode())


@pytest.fixture
async def app(settings: Settings, db_url: str) -> AsyncIterator[Front]:
    configured = dataclasses.replace(settings, max_body_bytes=LIMIT, run_projector=False)
    front = create_app(configured, db_url, body_timeout_s=0.2)
    # The lifespan runs on this test's loop (litestar's test client would run it on a loop of its own,
    # where the app's pool would then belong), so that the app can be called here directly.
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(front(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield front
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


@pytest.fixture
async def client(app: Front) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as test_client:
        yield test_client


class Exchange:
    """One request handed to the app as ASGI messages: `body` in `chunks` pieces (or `receive` itself),
    what it answered, and how many times it asked for more of the body."""

    def __init__(self, chunks: list[dict[str, Any]] | None = None) -> None:
        self.chunks = chunks or []
        self.received = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        if self.received > len(self.chunks):
            await asyncio.Event().wait()  # a client that sends nothing more
        return self.chunks[self.received - 1]

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def error(self) -> dict[str, Any]:
        return assert_error_shape(self.sent[1]["body"].decode())


async def post(app: Front, path: str, headers: list[tuple[bytes, bytes]], exchange: Exchange) -> Exchange:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers if any(name == b"host" for name, _ in headers) else [(b"host", b"test"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, exchange.receive, exchange.send)  # type: ignore[arg-type]
    return exchange


def body_message(body: bytes, *, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_without_a_length_is_refused_once_it_passes_the_limit_not_read_to_its_end(app, conn):
    chunks = [body_message(b"x" * CHUNK, more=True) for _ in range(5 * LIMIT // CHUNK)]

    exchange = await post(app, PATHS["calls"], [AUTH], Exchange(chunks))

    assert exchange.status == 413
    assert exchange.error["error"] == "payload_too_large"
    assert exchange.received == LIMIT // CHUNK + 1  # the chunk that passed the limit was the last read
    assert await counts(conn) == (0, 1)
    assert await conn.fetchval("SELECT body_size FROM rejected_deliveries") is None


async def test_a_declared_length_over_the_limit_is_refused_before_any_of_the_body_is_read(app, conn):
    headers = [AUTH, (b"content-length", b"%d" % (LIMIT + 1)), (b"x-request-id", b"lb-413")]

    exchange = await post(app, PATHS["sms"], headers, Exchange([body_message(b"x" * (LIMIT + 1))]))

    assert (exchange.status, exchange.received) == (413, 0)
    assert exchange.headers[b"x-request-id"] == b"lb-413"
    assert await conn.fetchval("SELECT body_size FROM rejected_deliveries") == LIMIT + 1


async def test_a_body_that_never_comes_is_408_and_the_connection_is_to_close(app, conn):
    headers = [AUTH, (b"content-length", b"100"), (b"x-request-id", b"lb-408")]

    exchange = await post(app, PATHS["recordings"], headers, Exchange())

    assert exchange.status == 408
    assert exchange.headers[b"connection"] == b"close"
    assert exchange.headers[b"x-request-id"] == b"lb-408"
    assert exchange.error["error"] == "request_timeout"
    assert await counts(conn) == (0, 1)


async def test_a_body_in_several_pieces_is_logged_whole(app, conn, org_id):
    body = body_for("calls", org_id)
    pieces = [body[i : i + 50] for i in range(0, len(body), 50)]
    chunks = [body_message(piece, more=True) for piece in pieces] + [body_message(b"")]

    exchange = await post(app, PATHS["calls"], [AUTH], Exchange(chunks))

    assert exchange.status == 202, exchange.sent
    assert bytes(await conn.fetchval("SELECT body FROM event_log")) == body


async def test_a_client_gone_before_its_body_is_whole_leaves_nothing(app, conn, org_id):
    chunks = [body_message(body_for("calls", org_id)[:20], more=True), {"type": "http.disconnect"}]

    await post(app, PATHS["calls"], [AUTH], Exchange(chunks))

    assert await counts(conn) == (0, 0)


async def test_a_content_length_that_is_not_a_number_is_400_as_litestar_words_it(app, conn, org_id):
    headers = [AUTH, (b"content-length", b"abc")]

    exchange = await post(app, PATHS["calls"], headers, Exchange([body_message(body_for("calls", org_id))]))

    assert exchange.status == 400
    assert exchange.error == {"error": "http_error", "details": "Invalid content-length: 'abc'"}
    assert await counts(conn) == (0, 0)


async def test_an_invalid_host_is_400_as_litestar_answers_it_and_nothing_is_read(app, conn, org_id):
    headers = [(b"host", b"a b"), AUTH, (b"x-request-id", b"lb-host")]
    exchange = Exchange([body_message(body_for("calls", org_id))])

    await post(app, PATHS["calls"], headers, exchange)

    assert (exchange.status, exchange.received) == (400, 0)
    assert exchange.error == {"error": "http_error", "details": "Invalid host header"}
    assert exchange.headers[b"x-request-id"] == b"lb-host"
    assert await counts(conn) == (0, 0)


@pytest.mark.parametrize(
    "path", [p + "/" for p in PATHS.values()] + [p.replace("/v1/", "//v1/") for p in PATHS.values()]
)
async def test_a_post_to_a_webhook_path_spelled_as_litestar_would_route_it_is_the_webhook(
    client, conn, org_id, path
):
    kind = next(kind for kind, known in PATHS.items() if known.rsplit("/", 1)[1] in path)

    response = await client.post(path, content=body_for(kind, org_id), headers=bearer())

    assert response.status_code == 202, response.text
    assert await conn.fetchval("SELECT kind FROM event_log") == kind


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_another_method_on_a_webhook_path_is_litestars_405_with_a_request_id(client, conn, method):
    for path in PATHS.values():
        response = await client.request(method, path, headers={**bearer(), "X-Request-Id": "lb-405"})

        assert response.status_code == 405, (path, response.text)
        assert_error_shape(response.text)
        assert response.headers["x-request-id"] == "lb-405"
    assert await counts(conn) == (0, 0)


@pytest.mark.parametrize(
    ("offered", "kept"), [("lb-7f3a:20/42", True), ("has space", False), (None, False)], ids=str
)
async def test_every_refusal_of_the_raw_path_carries_the_request_id(client, org_id, offered, kept):
    extra = {"X-Request-Id": offered} if offered is not None else {}
    refusals = {
        401: await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=extra),
        413: await client.post(PATHS["calls"], content=b"x" * (LIMIT + 1), headers={**bearer(), **extra}),
        400: await client.post(PATHS["calls"], content=b"{}", headers={**bearer(), **extra}),
    }

    for status, response in refusals.items():
        assert response.status_code == status, response.text
        sent = response.headers["x-request-id"]
        assert sent == offered if kept else GENERATED.fullmatch(sent), (status, sent)
    assert refusals[401].headers["www-authenticate"] == "Bearer"
    assert json.loads(refusals[413].text)["error"] == "payload_too_large"
