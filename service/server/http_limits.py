"""Bounds on a request's head, which uvicorn's httptools protocol has none of.

Without them a 10 MB header was read whole, and a connection sending its headers a byte at a time
(or nothing at all) was held for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.server.coalesced_writes import CoalescingTransport

__all__ = ["HEAD_TIMEOUT_S", "MAX_HEAD_BYTES", "BoundedHeadProtocol"]

MAX_HEAD_BYTES = 32 * 1024
"""The request line and headers together; MightyCall's are well under 1 KB."""
HEAD_TIMEOUT_S = 10.0
"""How long a request's head may take to arrive, from the connection (or the previous response) on;
and how long the rest of a body the app has already answered is waited for."""


def _error_response(status: str, error: str, details: str) -> bytes:
    body = msgspec.json.encode({"error": error, "details": details})
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounds on a request's head, which it has none of: a 10 MB
    header was read whole, and a connection sending its headers a byte at a time (or nothing at all)
    was held for ever. A head over MAX_HEAD_BYTES gets a 431, one slower than HEAD_TIMEOUT_S a 408
    (or, when not a byte of it came, the connection is closed); either way the app never sees it.
    The rest of a body the app answered early (a 401 before reading it) is not waited for longer than
    HEAD_TIMEOUT_S either. Every answer given here has the service's error shape and closes the
    connection."""

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # waiting for a request's head, or in the middle of one
        self._head_seen = 0  # bytes of reads that began and ended inside one head
        self._head_parsed = 0  # bytes of the request line and headers parsed so far
        self._heads = 0  # heads completed on this connection
        self._head_refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        began_in_head, heads = self._head_open, self._heads
        super().data_received(data)
        # httptools keeps a header that has not ended yet to itself: count what arrives meanwhile.
        if began_in_head and self._heads == heads and not self.transport.is_closing():
            self._head_seen += len(data)
            if self._head_seen > self.max_head_bytes:
                self._refuse_too_large()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._heads += 1
        self._head_seen = self._head_parsed = 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # the next bytes are the next request's; its clock starts at the response

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        # What httptools could not parse, in the service's error shape rather than uvicorn's plain text;
        # an exception raised by one of the callbacks below comes here too.
        if self._head_refused:
            self._refuse_too_large()
        else:
            self._refuse("400 Bad Request", "bad_request", "the request is not well-formed HTTP/1.1")

    def _count(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.max_head_bytes:
            self._head_refused = True
            raise _HeadTooLarge  # stops the parser; answered by send_400_response

    def _refuse_too_large(self) -> None:
        details = f"the request line and headers are over {self.max_head_bytes} bytes"
        self._refuse("431 Request Header Fields Too Large", "headers_too_large", details)

    def _refuse(self, status: str, error: str, details: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(_error_response(status, error, details))
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._head_open:
            # The app answered before the body was all there (a 401, a 413, a 408): the rest would be
            # read only to be thrown away, at the sender's pace. Not waited for any longer.
            if self.cycle is not None and self.cycle.response_complete:
                self.transport.close()
            return
        if self._head_seen:
            details = f"the headers did not arrive within {self.head_timeout_s:g} s"
            self._refuse("408 Request Timeout", "request_timeout", details)
        else:
            self.transport.close()


class _HeadTooLarge(Exception):
    pass
