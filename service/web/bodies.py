"""A request's body, read from ASGI `receive` messages, within a size limit."""

from __future__ import annotations

from litestar.types import Receive

from service.core.errors import PayloadTooLarge

__all__ = ["ClientDisconnected", "read_body", "too_large"]


class ClientDisconnected(Exception):
    """The client went away before its body was whole."""


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body is over the limit of {limit} bytes")


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; PayloadTooLarge as soon as what arrived passes `limit`, whatever the request
    declared (a chunked body declares nothing), so an oversized body is never held whole."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            # One chunk (the usual case) is returned as it is: join does not copy a lone bytes.
            return b"".join(chunks)
