"""One send per response instead of two.

uvicorn writes a response's head and its body to the socket separately. On a connection each write
is a system call and a TCP segment, and with loopback or a nearby load balancer the call also does the
receiving side's work, a large share of the web process's time under load (docs/performance.md).
Writes made in one turn of the event loop are joined and sent once at the end of that turn, so a head
and the body sent right after it leave together, and a response streamed in parts still leaves as
soon as each part is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescingTransport"]


class CoalescingTransport:
    """Wraps a transport: `write` queues, and the queue goes out in one write when the loop's current
    turn ends, or before the transport closes. Everything else is the wrapped transport's."""

    __slots__ = ("_loop", "_queued", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._queued:
            self._loop.call_soon(self._flush)
        self._queued.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if not self._queued:
            return
        data = self._queued[0] if len(self._queued) == 1 else b"".join(self._queued)
        self._queued.clear()
        # Closed meanwhile (the peer went away): asyncio would only log a warning for the write.
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
