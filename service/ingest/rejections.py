"""Authenticated deliveries that were refused, kept with the reason so that nothing is refused out of
sight. Unauthenticated requests are never stored: anyone can send those, as many as they like."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import asyncpg

from service.core.errors import IngestError

__all__ = ["record_rejection"]

_log = logging.getLogger("mightycall.delivery")

# Recording is best effort: the sender still gets its 4xx at once when the database is slow or gone.
_RECORD_TIMEOUT_S = 2.0

_INSERT = """
    INSERT INTO rejected_deliveries
        (received_at, kind, reason, details, content_type, body_size, body, request_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def record_rejection(
    pool: asyncpg.Pool,
    *,
    kind: str,
    received_at: dt.datetime,
    error: IngestError,
    content_type: str | None,
    body_size: int | None,
    body: bytes | None,
    request_id: str | None,
) -> None:
    try:
        async with asyncio.timeout(_RECORD_TIMEOUT_S):
            await pool.execute(
                _INSERT,
                received_at,
                kind,
                error.reason,
                error.details,
                content_type,
                body_size,
                body,
                request_id,
            )
    except Exception as exc:
        _log.warning(
            "could not record a rejected delivery",
            extra={"fields": {"kind": kind, "reason": error.reason, "error": type(exc).__name__}},
        )
