"""Each answer leaves the server in one TCP segment (service/server/coalesced_writes.py), and answers written
over several turns of the event loop (a streamed export) still arrive whole.

The count is the client socket's own: Linux's TCP_INFO says how many segments with data it received.
uvicorn disables Nagle's algorithm, so a head and a body written separately are two segments."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import struct
import sys
from collections.abc import AsyncIterator

import pytest

from service.app import create_app
from service.core.config import Settings
from tests.support.hostile import ALL_TOKEN, served
from tests.support.http import SECRET
from tests.support.payloads import PATHS, SEED, body_for
from tests.support.projecting import append_payloads

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="segment counts come from Linux's TCP_INFO")

_TCPI_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in struct tcp_info (Linux 4.6 and later)


@pytest.fixture
async def port(settings: Settings, db_url: str) -> AsyncIterator[int]:
    configured = dataclasses.replace(settings, audit_tokens=((ALL_TOKEN, None),), run_projector=False)
    async with served(create_app(configured, db_url)) as bound:
        yield bound


class Client:
    """One keep-alive connection, reading exactly one response at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def data_segments_in(self) -> int:
        sock = self.writer.get_extra_info("socket")
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        count: int = struct.unpack_from("I", info, _TCPI_DATA_SEGS_IN)[0]
        return count

    async def exchange(
        self, method: str, path: str, body: bytes = b"", token: str = SECRET
    ) -> tuple[int, bytes]:
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            if "content-length" in headers:
                content = await self.reader.readexactly(int(headers["content-length"]))
            else:
                content = await self._chunked()
        return int(lines[0].split()[1]), content

    async def _chunked(self) -> bytes:
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readexactly(2)
        return b"".join(parts)


@pytest.fixture
async def client(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_each_answer_is_one_segment(client, org_id):
    answers = [
        ("POST", PATHS["calls"], body_for("calls", org_id, call_id="seg1"), SECRET, 202),
        ("POST", PATHS["calls"], body_for("calls", org_id, call_id="seg1"), SECRET, 200),  # a duplicate
        ("POST", PATHS["sms"], b"{not json", SECRET, 400),
        ("POST", PATHS["sms"], body_for("sms", org_id), "wrong-secret", 401),
        ("GET", "/health", b"", SECRET, 200),
    ]
    for method, path, body, token, expected in answers:
        before = client.data_segments_in()
        status, _ = await client.exchange(method, path, body, token)
        assert status == expected
        assert client.data_segments_in() - before == 1, (method, path, status)


async def test_a_streamed_export_arrives_whole(client, conn, org_id):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"x{n}"}) for n in range(300)])
    status, content = await client.exchange("GET", "/audit/export", token=ALL_TOKEN)
    assert status == 200
    lines = [json.loads(line) for line in content.splitlines()]
    assert [line["id"] for line in lines] == list(range(1, 301))
    # The connection is still good for the next request.
    status, _ = await client.exchange("GET", "/health")
    assert status == 200
