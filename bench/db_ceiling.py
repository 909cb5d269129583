"""The database ceiling: raw asyncpg appends of rows shaped like the log's, in batched multi-row
INSERTs, one committed transaction per batch, with the same indexes and no HTTP, no Python service.
What PostgreSQL on this machine can absorb, durably."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import asyncpg

_TABLE = "bench_db_ceiling"
_INSERT = f"""
    INSERT INTO {_TABLE} (id, received_at, kind, event_type, org_id, external_id, content_type, body,
                          body_sha256, prev_hash, hash)
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                         $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[])
"""


async def db_ceiling(url: str, org_id: uuid.UUID, *, seconds: float, batch: int = 64) -> float:
    """Rows per second appended for `seconds`, `batch` rows per transaction."""
    conn = await asyncpg.connect(url, server_settings={"synchronous_commit": "on"})
    try:
        await conn.execute(
            f"DROP TABLE IF EXISTS {_TABLE}; CREATE TABLE {_TABLE} (LIKE event_log INCLUDING INDEXES)"
        )
        position, rows = 0, 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            columns: tuple[list[object], ...] = tuple([] for _ in range(11))
            now = dt.datetime.now(dt.UTC)
            for _ in range(batch):
                position += 1
                body = b'{"event":"sms.received","sms_id":"sms_%d","phone_number":"+12125551234"}' % position
                sha = hashlib.sha256(body).digest()
                row = (position, now, "sms", "sms.received", org_id, f"sms_{position}", "application/json",
                       body, sha, sha, sha)  # fmt: skip
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
            async with conn.transaction():
                await conn.execute(_INSERT, *columns)
            rows += batch
        elapsed = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {_TABLE}")
        return rows / elapsed
    finally:
        await conn.close()
