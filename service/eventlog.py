"""Appending to the event log: the only code that writes it.

Why positions are assigned under a lock, not by a sequence
----------------------------------------------------------
A sequence hands out numbers when a transaction INSERTs, but transactions commit in another order.
A reader that has seen position 105 may later see 104 commit, and a reader that follows
"id > last seen" (the projector, an auditor's export) then skips 104 forever. A rolled-back insert
also burns its number, and a hole in the log looks exactly like a deleted event.

So every append transaction first locks the single row of `event_log_head`, takes the next positions
from it, inserts, moves the head, and commits while still holding the lock. Appends are serialised:
positions are gapless (a rollback leaves the head where it was) and ascending in commit order, across
any number of processes. The same locked step is where each event's hash is chained to the previous
one. The lock is held through the commit's flush to disk, so callers batch many deliveries into one
transaction (service/appender.py) and pay it once per batch instead of once per webhook.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from service.chain import event_hash

__all__ = ["CHANNEL", "Appended", "Delivery", "append"]

CHANNEL = "mightycall_event_log"
"""NOTIFY channel: each append transaction signals it, delivered when the transaction commits, so the
live projector wakes without polling."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified webhook, ready to be appended exactly as it arrived."""

    kind: str
    event_type: str
    org_id: UUID
    external_id: str
    content_type: str | None
    body: bytes
    body_sha256: bytes
    received_at: dt.datetime
    request_id: str | None = None
    """Joins the delivery's log line to its row; chained with the rest of the envelope."""


@dataclass(frozen=True, slots=True)
class Appended:
    event_id: int
    duplicate: bool
    """True when the same endpoint had already logged the same bytes: nothing was appended."""


_LOCK_HEAD = "SELECT position, hash FROM event_log_head FOR UPDATE"

_FIND_LOGGED = """
    SELECT l.kind, l.body_sha256, l.id
    FROM event_log l
    JOIN unnest($1::text[], $2::bytea[]) AS d (kind, body_sha256)
      ON l.kind = d.kind AND l.body_sha256 = d.body_sha256
"""

_INSERT = """
    INSERT INTO event_log (id, received_at, kind, event_type, org_id, external_id, content_type,
                           body, body_sha256, prev_hash, hash, request_id)
    SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                         $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], $12::text[])
"""

_MOVE_HEAD = f"""
    WITH moved AS (UPDATE event_log_head SET position = $1, hash = $2 RETURNING position)
    SELECT pg_notify('{CHANNEL}', position::text) FROM moved
"""


async def append(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> list[Appended]:
    """Append `deliveries` in order; one result per delivery, in the same order.

    Must run inside the caller's transaction: the positions are only final once it commits, and the
    caller must not acknowledge anything before then.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("eventlog.append must run inside a transaction")
    head = await conn.fetchrow(_LOCK_HEAD)
    assert head is not None, "event_log_head is created by the first migration"
    position: int = head["position"]
    chain: bytes = head["hash"]

    # Read after taking the lock: under READ COMMITTED this statement sees every append that committed
    # before us, so a redelivery racing its original is still recognised.
    logged = {
        (row["kind"], bytes(row["body_sha256"])): row["id"]
        for row in await conn.fetch(
            _FIND_LOGGED, [d.kind for d in deliveries], [d.body_sha256 for d in deliveries]
        )
    }

    results: list[Appended] = []
    columns: tuple[list[object], ...] = tuple([] for _ in range(12))
    for d in deliveries:
        key = (d.kind, d.body_sha256)
        if key in logged:
            results.append(Appended(logged[key], duplicate=True))
            continue
        position += 1
        prev, chain = (
            chain,
            event_hash(
                chain,
                event_id=position,
                received_at=d.received_at,
                kind=d.kind,
                event_type=d.event_type,
                org_id=d.org_id,
                external_id=d.external_id,
                content_type=d.content_type,
                body_sha256=d.body_sha256,
                request_id=d.request_id,
            ),
        )
        row = (
            position,
            d.received_at,
            d.kind,
            d.event_type,
            d.org_id,
            d.external_id,
            d.content_type,
            d.body,
            d.body_sha256,
            prev,
            chain,
            d.request_id,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
        logged[key] = position
        results.append(Appended(position, duplicate=False))

    if columns[0]:
        await conn.execute(_INSERT, *columns)
        await conn.execute(_MOVE_HEAD, position, chain)
    return results
