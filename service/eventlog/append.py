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
transaction (service/eventlog/group_commit.py) and pay it once per batch instead of once per webhook.

The locked step is a function in the database, append_events() (alembic/sql/), called as one
statement. Held as six statements from here, the lock lasted six round trips, each waiting its turn in
an event loop busy with HTTP; the database computes each hash from the envelope encoded here
(service/eventlog/chain.py) with the position it assigns put in front.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from service.eventlog.chain import envelope_tail
from service.eventlog.sql import CHANNEL

__all__ = ["CHANNEL", "Appended", "Delivery", "append"]


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
    admitted_from: int | None = None
    """The refused delivery this one was admitted from (`rejected admit`); None for a live webhook."""


@dataclass(frozen=True, slots=True)
class Appended:
    event_id: int
    duplicate: bool
    """True when the same endpoint had already logged the same bytes: nothing was appended."""


_APPEND = """
    SELECT event_id, duplicate FROM append_events(
        $1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::bytea[],
        $8::bytea[], $9::text[], $10::bytea[], $11::bigint[])
"""


async def append(conn: asyncpg.Connection, deliveries: Sequence[Delivery]) -> list[Appended]:
    """Append `deliveries` in order; one result per delivery, in the same order.

    One statement, which does the whole locked step in the database (alembic 0006): alone it is its own
    transaction, committed when this returns; inside the caller's transaction, the positions are final
    only once that commits, and nothing may be acknowledged before then.
    """
    # The same bytes twice in one batch are one event: the function sees each only once.
    first: dict[tuple[str, bytes], int] = {}
    unique: list[Delivery] = []
    for d in deliveries:
        if first.setdefault((d.kind, d.body_sha256), len(unique)) == len(unique):
            unique.append(d)
    rows = await conn.fetch(
        _APPEND,
        [d.received_at for d in unique],
        [d.kind for d in unique],
        [d.event_type for d in unique],
        [d.org_id for d in unique],
        [d.external_id for d in unique],
        [d.content_type for d in unique],
        [d.body for d in unique],
        [d.body_sha256 for d in unique],
        [d.request_id for d in unique],
        [_tail(d) for d in unique],
        [d.admitted_from for d in unique],
    )
    appended = [Appended(row["event_id"], duplicate=row["duplicate"]) for row in rows]
    results = []
    seen: set[tuple[str, bytes]] = set()
    for d in deliveries:
        key = (d.kind, d.body_sha256)
        result = appended[first[key]]
        results.append(result if key not in seen else Appended(result.event_id, duplicate=True))
        seen.add(key)
    return results


def _tail(d: Delivery) -> bytes:
    return envelope_tail(
        received_at=d.received_at,
        kind=d.kind,
        event_type=d.event_type,
        org_id=d.org_id,
        external_id=d.external_id,
        content_type=d.content_type,
        body_sha256=d.body_sha256,
        request_id=d.request_id,
        admitted_from=d.admitted_from,
    )
