"""Limits only a real socket can test: the app behind uvicorn as `serve` runs it (service.server.serve), in
this process, on a loopback port. A trickled body or head, an oversized head, a chunked body over the
limit, malformed HTTP, and a flood of unauthenticated requests.

Every timing bound is a guard many times the configured timeout (0.5 s here): it says "not forever",
it does not measure speed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.core.config import Settings
from service.server.http_limits import MAX_HEAD_BYTES, BoundedHeadProtocol
from tests.support.hostile import (
    assert_error_shape,
    assert_safe,
    counts,
    raw_exchange,
    raw_exchange_closed,
    served,
)
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, body_for

TIMEOUT_S = 0.5
GUARD_S = 8.0


class QuickHeads(BoundedHeadProtocol):
    head_timeout_s = TIMEOUT_S


@pytest.fixture
async def port(settings: Settings, db_url: str) -> AsyncIterator[int]:
    app = create_app(dataclasses.replace(settings, run_projector=False), db_url, body_timeout_s=TIMEOUT_S)
    async with served(app, http=QuickHeads) as bound:
        yield bound


@pytest.fixture
async def served_as_configured(settings: Settings, db_url: str) -> AsyncIterator[int]:
    """The app with serve's own time limits (10 s), for a test whose client shares this event loop with
    500 requests at once: starved, it can take longer than 0.5 s to send the rest of a body the server
    has already answered, and the server rightly stops waiting for it and closes the connection."""
    app = create_app(dataclasses.replace(settings, run_projector=False), db_url)
    async with served(app) as bound:
        yield bound


def head(path: str, *lines: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    ).encode()


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the first HTTP response in `response`."""
    top, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body[: int(headers.get("content-length", len(body)))]


def complete_answers(received: bytes) -> int:
    """How many whole HTTP responses (head and Content-Length body) `received` holds."""
    count = 0
    while (end := received.find(b"\r\n\r\n")) != -1:
        length = int(parse(received[: end + 4])[1].get("content-length", 0))
        if len(received) < end + 4 + length:
            break
        received = received[end + 4 + length :]
        count += 1
    return count


async def exchange(port: int, request: bytes, *, answers: int = 1) -> bytes:
    """Sends `request` as is and reads until `answers` whole responses have come (or the server hangs
    up): a kept-alive connection is not waited out, and a slow commit is waited for, up to GUARD_S."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        received = b""
        async with asyncio.timeout(GUARD_S):
            while complete_answers(received) < answers and (chunk := await reader.read(65536)):
                received += chunk
        return received
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def trickle(port: int, start: bytes, drip: bytes) -> tuple[bytes, float]:
    """Sends `start`, then `drip` a byte every 0.1 s until the server answers or hangs up; returns what
    it answered and how long that took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()

    async def drip_bytes() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in drip:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)

    try:
        writer.write(start)
        await writer.drain()
        dripping = asyncio.create_task(drip_bytes())
        chunks = []
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(GUARD_S):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        dripping.cancel()
        return b"".join(chunks), time.monotonic() - began
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# --- slow senders -------------------------------------------------------------------------------------


async def test_a_trickled_body_gets_408_and_the_connection_is_closed(port, conn, org_id):
    body = body_for("calls", org_id)
    start = head(
        PATHS["calls"],
        f"Authorization: Bearer {SECRET}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    )

    answer, took = await trickle(port, start + body[:10], body[10:])

    assert took < GUARD_S, "the server held the request until the guard gave up"
    status, headers, error = parse(answer)
    assert status == 408
    assert headers["connection"] == "close"
    assert assert_error_shape(error.decode())["error"] == "request_timeout"
    assert await counts(conn) == (0, 1)
    rejected = await conn.fetchrow("SELECT kind, reason, body, body_size FROM rejected_deliveries")
    assert dict(rejected) == {
        "kind": "calls",
        "reason": "request_timeout",
        "body": None,
        "body_size": len(body),
    }


async def test_a_trickled_chunked_body_gets_408(port, conn, org_id):
    body = body_for("sms", org_id)
    start = head(PATHS["sms"], f"Authorization: Bearer {SECRET}", "Transfer-Encoding: chunked")
    chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    answer, took = await trickle(port, start + chunk[:20], chunk[20:])

    assert took < GUARD_S
    assert parse(answer)[0] == 408
    assert await counts(conn) == (0, 1)
    assert await conn.fetchval("SELECT body_size FROM rejected_deliveries") is None  # none was announced


async def test_an_unauthenticated_trickle_is_401_and_its_body_is_not_waited_for(port, conn, org_id):
    # The 401 goes out before the body is read; uvicorn would then read the rest only to discard it,
    # at the sender's pace, holding the connection (2048 of those and every request is a 503).
    body = body_for("calls", org_id)
    start = head(PATHS["calls"], "Authorization: Bearer wrong", f"Content-Length: {len(body)}")

    answer, took = await trickle(port, start, body)

    assert took < GUARD_S, "the connection was held while the body trickled in"
    assert parse(answer)[0] == 401
    assert await counts(conn) == (0, 0)


async def test_a_trickled_head_gets_408_and_the_app_never_sees_it(port, conn, org_id):
    start = f"POST {PATHS['calls']} HTTP/1.1\r\nHost: test\r\n".encode()

    answer, took = await trickle(port, start, f"Authorization: Bearer {SECRET}\r\n".encode() * 20)

    assert took < GUARD_S
    status, _, error = parse(answer)
    assert status == 408
    assert assert_error_shape(error.decode())["error"] == "request_timeout"
    assert await counts(conn) == (0, 0)


async def test_a_connection_that_sends_nothing_is_closed(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(GUARD_S):
            assert await reader.read(1) == b""  # closed by the server, without an answer
    finally:
        writer.close()


async def test_a_keep_alive_connection_serves_several_requests_and_a_pipelined_pair(port, conn, org_id):
    # The bounds on heads must not disturb what HTTP/1.1 allows.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=GUARD_S) as client:
        for n in range(3):
            response = await client.post(
                PATHS["calls"], content=body_for("calls", org_id, call_id=f"k{n}"), headers=bearer()
            )
            assert response.status_code == 202
        # Idle for longer than a head may take: the server closes the connection, the client opens another.
        await asyncio.sleep(TIMEOUT_S * 2)
        response = await client.post(
            PATHS["calls"], content=body_for("calls", org_id, call_id="k3"), headers=bearer()
        )
        assert response.status_code == 202
    pair = b"".join(
        head(PATHS["sms"], f"Authorization: Bearer {SECRET}", f"Content-Length: {len(body)}") + body
        for body in (body_for("sms", org_id, sms_id="p1"), body_for("sms", org_id, sms_id="p2"))
    )
    answer = await exchange(port, pair, answers=2)
    assert answer.count(b"HTTP/1.1 202 Accepted") == 2
    assert await counts(conn) == (6, 0)


# --- sizes --------------------------------------------------------------------------------------------


async def test_an_oversized_head_is_431_or_closed_and_nothing_is_written(port, conn, org_id):
    body = body_for("calls", org_id)
    for extra, must_answer in [
        (["X-Junk: " + "a" * 100_000], True),
        ([f"X-Junk-{n}: {'b' * 40}" for n in range(2000)], True),
        # Still sending when refused: the peer may see the connection reset before it reads the 431.
        (["X-Junk: " + "c" * 10_000_000], False),
    ]:
        request = head(
            PATHS["calls"], f"Authorization: Bearer {SECRET}", *extra, f"Content-Length: {len(body)}"
        )
        answer, closed = await raw_exchange_closed(port, request + body, wait_s=GUARD_S)
        assert closed
        if answer or must_answer:
            status, headers, error = parse(answer)
            assert status == 431
            assert headers["connection"] == "close"
            assert assert_error_shape(error.decode())["error"] == "headers_too_large"
        assert await counts(conn) == (0, 0)


async def test_an_oversized_url_is_431(port, conn):
    answer = await raw_exchange(
        port, head(PATHS["calls"] + "?x=" + "q" * 100_000, f"Authorization: Bearer {SECRET}")
    )

    assert parse(answer)[0] == 431
    assert await counts(conn) == (0, 0)


async def test_a_large_head_within_the_limit_is_served(port, conn, org_id):
    body = body_for("calls", org_id)
    junk = "X-Junk: " + "a" * (MAX_HEAD_BYTES - 1000)
    request = (
        head(PATHS["calls"], f"Authorization: Bearer {SECRET}", junk, f"Content-Length: {len(body)}") + body
    )

    answer = await exchange(port, request)

    assert parse(answer)[0] == 202
    assert await counts(conn) == (1, 0)


async def test_a_chunked_body_over_the_limit_is_413(port, conn, org_id, settings):
    # The ASGI test client cannot stream a body: only a socket shows this one.
    chunk = b"x" * 65536
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    request = head(PATHS["calls"], f"Authorization: Bearer {SECRET}", "Transfer-Encoding: chunked") + body

    answer = await raw_exchange(port, request, wait_s=GUARD_S)

    status, _, error = parse(answer)
    assert status == 413
    assert assert_error_shape(error.decode())["error"] == "payload_too_large"
    assert await counts(conn) == (0, 1)
    rejected = await conn.fetchrow("SELECT reason, body, body_size FROM rejected_deliveries")
    assert dict(rejected) == {"reason": "payload_too_large", "body": None, "body_size": None}
    assert 20 * len(chunk) > settings.max_body_bytes


# --- malformed HTTP and header injection --------------------------------------------------------------


CALLS = b"POST /functions/v1/mightycall-calls-webhook HTTP/1.1\r\nHost: t\r\n"


async def test_malformed_http_is_400_in_the_error_shape_and_nothing_is_written(port, conn):
    for request in [
        CALLS + b"Authorization: Bearer a\x00b\r\n\r\n",
        CALLS + b"X Y: z\r\n\r\n",
        CALLS + b"Content-Length: abc\r\n\r\n",
        CALLS + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        CALLS + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        CALLS + b"Authorization: Bearer a\rX-Injected: 1\r\n\r\n",  # a bare CR
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
    ]:
        answer, closed = await raw_exchange_closed(port, request, wait_s=GUARD_S)
        assert closed, request
        status, _, error = parse(answer)
        assert status == 400, request
        assert_safe(status, error.decode())
    assert await counts(conn) == (0, 0)


async def test_crlf_in_a_header_value_is_refused_by_the_client_and_split_by_the_server(port, conn, org_id):
    # httpx (h11) will not send CR or LF in a header value: header injection needs a raw socket.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=GUARD_S) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.post(
                PATHS["calls"], content=b"{}", headers={"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}
            )
    # Over a raw socket, CRLF ends the header: what follows is a header of its own, never part of the
    # value. An injected second Authorization header is refused (exactly one is accepted).
    body = body_for("calls", org_id)
    request = (
        head(
            PATHS["calls"],
            f"Authorization: Bearer {SECRET}",
            f"Authorization: Bearer {SECRET}",
            f"Content-Length: {len(body)}",
        )
        + body
    )

    status, _, error = parse(await exchange(port, request))

    assert status == 401
    assert_safe(status, error.decode())
    assert await counts(conn) == (0, 0)


# --- an unauthenticated flood ---------------------------------------------------------------------------


async def _backends(conn: asyncpg.Connection) -> set[tuple[Any, ...]]:
    """The other connections to this database and when each last started a statement."""
    rows = await conn.fetch(
        "SELECT pid, backend_start, xact_start, query_start FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return {tuple(row) for row in rows}


async def test_an_unauthenticated_flood_writes_nothing_and_costs_the_database_nothing(
    served_as_configured, conn, org_id
):
    port = served_as_configured
    body = b'{"event": "call.completed", "junk": "' + b"x" * (64 * 1024 - 40) + b'"}'
    assert len(body) >= 60 * 1024
    backends = await _backends(conn)
    assert backends, "the app's pool should hold connections to watch"
    before = await counts(conn)

    # uvicorn closes a connection idle for 5 s; a client that reuses one at that moment gets a reset, with
    # nothing wrong in the code (a starved client on a busy machine can leave one idle that long). Clients
    # should let go first.
    limits = httpx.Limits(max_connections=16, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as client:

        async def one(n: int) -> int:
            headers = {"Authorization": f"Bearer {SECRET[:-1]}{n % 10}", "Content-Type": "application/json"}
            response = await client.post(PATHS[list(PATHS)[n % 4]], content=body, headers=headers)
            assert_safe(response.status_code, response.text)
            return response.status_code

        statuses = await asyncio.gather(*(one(n) for n in range(500)))

        assert statuses == [401] * 500
        assert await counts(conn) == before
        # Not a statement ran on any of the app's connections, and none was opened.
        assert await _backends(conn) == backends

        # The check can see work: one authenticated delivery changes it.
        accepted = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
        assert accepted.status_code == 202
        assert await _backends(conn) != backends


async def test_an_unknown_route_over_the_socket_has_the_error_shape(port):
    answer = await exchange(port, head("/nowhere", "Content-Length: 0"))

    status, _, error = parse(answer)
    assert status == 404
    assert set(json.loads(error)) == {"error", "details"}
