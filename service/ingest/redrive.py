"""Redrive: refused deliveries admitted to the log once the cause of their refusal is fixed.

A refusal is never edited. Admitting one sends its stored body through the checks a webhook meets at the
door (size limit, decoding, organization), as if it arrived now, and what passes goes through the same
append as a live webhook: byte for byte, deduplicated by its bytes, so admitting twice, or admitting a
body MightyCall has since resent successfully, appends nothing. The admitted event keeps the delivery's
received time and request id and names the refusal it came from, inside its chained envelope. Every
attempt, whatever it found, is a row of the append-only `rejection_admissions`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from service.core.errors import CONTENT_TYPE_REFUSED, IngestError, InvalidPayload, PayloadTooLarge
from service.eventlog.append import Delivery, append
from service.ingest.ingestion import RequestFacts, check
from service.ingest.organizations import OrgResolver

__all__ = ["IN_LOG", "OUTCOMES", "Admission", "RejectedFilter", "admit", "admit_matching", "list_rejected"]

_log = logging.getLogger("mightycall.admission")

OUTCOMES = ("admitted", "duplicate", "refused", "no_body")
"""What an attempt found: appended now; already in the log (nothing appended); refused again, with
today's reason; or nothing to admit (the body was not kept: a 413 or a 408)."""

_PAGE = 200


@dataclass(frozen=True, slots=True)
class Admission:
    rejection_id: int
    kind: str
    outcome: str
    event_id: int | None = None
    reason: str | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedFilter:
    kind: str | None = None
    since: dt.datetime | None = None
    reason: str | None = None

    def where(self, first: int) -> tuple[str, list[object]]:
        """SQL conditions on `rejected_deliveries r`, with parameters numbered from `first`."""
        conditions: list[str] = []
        args: list[object] = []
        for column, value in (
            ("r.kind =", self.kind),
            ("r.received_at >=", self.since),
            ("r.reason =", self.reason),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} ${first + len(args) - 1}")
        return " AND ".join(conditions) or "true", args


IN_LOG = "LEFT JOIN event_log l ON r.body IS NOT NULL AND l.kind = r.kind AND l.body_sha256 = sha256(r.body)"
"""Joins a refusal `r` to the event `l` its body is in the log as, if any: admitted, or resent since."""

_REJECTED = f"""
    SELECT r.id, r.received_at, r.kind, r.reason, r.details, r.content_type, r.body_size,
           r.body IS NOT NULL AS body_kept, r.request_id,
           l.id AS in_log_as, l.admitted_from = r.id AS admitted_from_here
    FROM rejected_deliveries r
    {IN_LOG}
"""


async def list_rejected(
    conn: asyncpg.Connection, where: RejectedFilter, *, before: int | None, limit: int
) -> list[asyncpg.Record]:
    """Refusals, newest first: each with whether its body is in the log now, and as which event."""
    conditions, args = where.where(3)
    rows: list[asyncpg.Record] = await conn.fetch(
        f"{_REJECTED} WHERE ($1::bigint IS NULL OR r.id < $1) AND {conditions} ORDER BY r.id DESC LIMIT $2",
        before,
        limit,
        *args,
    )
    return rows


async def admit(
    pool: asyncpg.Pool, ids: Sequence[int], *, resolver: OrgResolver, max_body_bytes: int
) -> list[Admission]:
    """Admit the refusals `ids`, in that order. An id that names no refusal is an error, raised before
    anything is admitted."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM rejected_deliveries WHERE id = ANY($1::bigint[])", list(ids))
    found = {row["id"]: row for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise LookupError(f"no refused delivery with id {', '.join(map(str, missing))}")
    return [await _admit_one(pool, found[i], resolver, max_body_bytes) for i in dict.fromkeys(ids)]


async def admit_matching(
    pool: asyncpg.Pool, where: RejectedFilter, *, resolver: OrgResolver, max_body_bytes: int
) -> AsyncIterator[Admission]:
    """Admit every refusal that matches, oldest first, a page at a time: memory stays flat."""
    conditions, args = where.where(2)
    after = 0
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT * FROM rejected_deliveries r WHERE r.id > $1 AND {conditions}"
                f" ORDER BY r.id LIMIT {_PAGE}",
                after,
                *args,
            )
        for row in rows:
            yield await _admit_one(pool, row, resolver, max_body_bytes)
        if len(rows) < _PAGE:
            return
        after = rows[-1]["id"]


async def _admit_one(
    pool: asyncpg.Pool, row: asyncpg.Record, resolver: OrgResolver, max_body_bytes: int
) -> Admission:
    kind = row["kind"]
    body = None if row["body"] is None else bytes(row["body"])
    try:
        if body is None:
            admission = Admission(row["id"], kind, "no_body")
            await _record(pool, admission)
            return _logged(admission)
        delivery = await _check(row, body, resolver, max_body_bytes)
    except IngestError as exc:
        admission = Admission(row["id"], kind, "refused", reason=exc.reason, details=exc.details)
        await _record(pool, admission)
        return _logged(admission)
    async with pool.acquire() as conn, conn.transaction():
        # The admission is recorded in the transaction that appends: one is never there without the other.
        (appended,) = await append(conn, [delivery])
        outcome = "duplicate" if appended.duplicate else "admitted"
        admission = Admission(row["id"], kind, outcome, event_id=appended.event_id)
        await _record(conn, admission)
    return _logged(admission)


async def _check(row: asyncpg.Record, body: bytes, resolver: OrgResolver, max_body_bytes: int) -> Delivery:
    """The checks of the door on the stored body, in its order: the Delivery it makes now, or the
    IngestError a webhook with these bytes would get now."""
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"body is over the limit of {max_body_bytes} bytes")
    if row["reason"] == InvalidPayload.reason and row["details"] == CONTENT_TYPE_REFUSED:
        # Refused for its header alone, which was not kept: the body cannot be checked as it arrived.
        raise InvalidPayload(f"{CONTENT_TYPE_REFUSED}, and it was not kept")
    facts = RequestFacts(
        received_at=row["received_at"],
        content_type=row["content_type"],
        content_length=len(body),
        request_id=row["request_id"],
    )
    delivery = await check(row["kind"], body, facts, resolver)
    return dataclasses.replace(delivery, admitted_from=row["id"])


async def _record(conn: asyncpg.Pool | asyncpg.Connection, admission: Admission) -> None:
    await conn.execute(
        "INSERT INTO rejection_admissions (rejection_id, kind, outcome, reason, details, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        admission.rejection_id,
        admission.kind,
        admission.outcome,
        admission.reason,
        admission.details,
        admission.event_id,
    )


def _logged(admission: Admission) -> Admission:
    fields = {"rejection_id": admission.rejection_id, "kind": admission.kind, "outcome": admission.outcome}
    if admission.event_id is not None:
        fields["event_id"] = admission.event_id
    if admission.reason is not None:
        fields["reason"] = admission.reason
    _log.info("admission", extra={"fields": fields})
    return admission
