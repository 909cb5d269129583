"""Applying a batch of the log to a projection's table: rows and checkpoint in one transaction.

Reading "id > checkpoint" is safe because positions are gapless and ascending in commit order
(service/eventlog/append.py): nothing can commit later with a position below one already read. Reads stop at
the head's position, read first: every event up to it has committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from uuid import UUID

import asyncpg

from projections.model import Event, Key, Projection, Row
from projections.store import load_rows, upsert_rows
from service.core.payloads import decode
from service.core.phones import PhoneBook, to_e164
from service.database.pool import passes

_log = logging.getLogger("mightycall.projector")

__all__ = [
    "ProjectionFailed",
    "apply_events",
    "fetch_events",
    "head_position",
    "load_phone_book",
    "mentioned_numbers",
    "project_batch",
    "step",
    "to_event",
    "touched_keys",
    "write_events",
]

_READ = """
    SELECT id, kind, org_id, body FROM event_log
    WHERE id > $1 AND id <= $2 AND kind = ANY($3::text[])
    ORDER BY id LIMIT $4
"""

_PHONES = """
    SELECT p.org_id, p.e164, p.id FROM phone_numbers p
    JOIN unnest($1::uuid[], $2::text[]) AS k (org_id, e164) ON p.org_id = k.org_id AND p.e164 = k.e164
"""


# A table at position 0 holds nothing yet: the version that projects its first events is the one that
# builds it, so a new database is not reported due a rebuild by the versions its migrations named.
_ADVANCE = """
    UPDATE projection_checkpoints
    SET position = $2, updated_at = now(), version = CASE WHEN position = 0 THEN $3 ELSE version END
    WHERE name = $1
"""


class ProjectionFailed(Exception):
    """The event at `position` cannot be applied; the projection stops there rather than skip it."""

    def __init__(self, position: int, cause: BaseException | str) -> None:
        """`cause` is the error, or the `description` a ProjectionFailed had in another process."""
        if isinstance(cause, BaseException):
            first_line = (str(cause).strip().splitlines() or [""])[0][:300]
            cause = f"{type(cause).__name__}: {first_line}"
        super().__init__(f"event {position}: {cause}")
        self.position = position
        self.description = cause


async def head_position(conn: asyncpg.Connection) -> int:
    position: int = await conn.fetchval("SELECT position FROM event_log_head")
    return position


async def load_phone_book(
    conn: asyncpg.Connection, region: str, mentions: Iterable[tuple[UUID, str | None]]
) -> PhoneBook:
    pairs = {(org_id, e164) for org_id, raw in mentions if (e164 := to_e164(raw, region)) is not None}
    if not pairs:
        return PhoneBook(region)
    orgs, numbers = zip(*pairs, strict=True)
    rows = await conn.fetch(_PHONES, list(orgs), list(numbers))
    return PhoneBook(region, {(row["org_id"], row["e164"]): row["id"] for row in rows})


async def fetch_events(
    conn: asyncpg.Connection, kinds: Iterable[str], *, after: int, upto: int, limit: int
) -> list[asyncpg.Record]:
    """The log's records of `kinds` in (after, upto], in log order, at most `limit` of them."""
    records: list[asyncpg.Record] = await conn.fetch(_READ, after, upto, list(kinds), limit)
    return records


def to_event(record: asyncpg.Record) -> Event:
    try:
        return Event(
            id=record["id"],
            kind=record["kind"],
            org_id=record["org_id"],
            payload=decode(record["kind"], record["body"]),
        )
    except Exception as exc:
        raise ProjectionFailed(record["id"], exc) from exc


def touched_keys(projection: Projection, events: Iterable[Event]) -> list[tuple[Event, list[Key]]]:
    """Each event with the keys of the rows it touches."""
    touched = []
    for event in events:
        try:
            touched.append((event, projection.keys(event)))
        except Exception as exc:
            raise ProjectionFailed(event.id, exc) from exc
    return touched


def mentioned_numbers(
    projection: Projection, events: Iterable[Event], rows: Iterable[Row]
) -> list[tuple[UUID, str | None]]:
    """The numbers a batch may look up: its events', and its rows' (a merged row can keep the number an
    earlier batch gave it)."""
    mentioned = [(event.org_id, raw) for event in events for raw in projection.phone_numbers(event)]
    mentioned += [(row["org_id"], raw) for row in rows for raw in projection.row_phone_numbers(row)]
    return mentioned


def apply_events(
    projection: Projection, touched: list[tuple[Event, list[Key]]], rows: dict[Key, Row], phones: PhoneBook
) -> dict[Key, Row]:
    """Apply the events in order to `rows` (updated in place); returns the rows that changed."""
    changed: dict[Key, Row] = {}
    for event, keys in touched:
        for key in keys:
            try:
                row = projection.apply(rows.get(key), event, key, phones)
            except Exception as exc:
                raise ProjectionFailed(event.id, exc) from exc
            if row is not None:
                rows[key] = changed[key] = row
    return changed


async def project_batch(
    conn: asyncpg.Connection,
    projection: Projection,
    table_name: str,
    *,
    after: int,
    upto: int,
    limit: int,
    region: str,
) -> int:
    """Apply the projection's events in (after, upto] (at most `limit`) to `table_name`; returns the
    position reached. `upto` must be a committed head position."""
    records = await fetch_events(conn, projection.kinds, after=after, upto=upto, limit=limit)
    # Fewer than `limit`: every event up to `upto` has been seen, including those of other kinds.
    reached = records[-1]["id"] if len(records) == limit else upto
    events = [to_event(record) for record in records]
    try:
        await write_events(conn, [(projection, table_name, events)], region)
    except Exception as exc:
        # A batch of one event that the database refuses for good (its rows break a constraint, say) is
        # that event's failure, at its own position. Anything that may pass is the caller's to retry, and
        # a statement prepared before a migration is step's to prepare again.
        if len(events) == 1 and not passes(exc) and not isinstance(exc, asyncpg.InvalidCachedStatementError):
            raise ProjectionFailed(events[0].id, exc) from exc
        raise
    return reached


async def write_events(
    conn: asyncpg.Connection, targets: Sequence[tuple[Projection, str, list[Event]]], region: str
) -> None:
    """Apply each (projection, table name, its events) in log order: the rows the events touch are
    loaded, one phone book is looked up for them all (projections of the same calls mention the same
    numbers), and the rows that changed are written."""
    loaded = []
    for projection, table_name, events in targets:
        touched = touched_keys(projection, events)
        keys = (key for _, keys in touched for key in keys)
        rows = await load_rows(conn, projection.table, table_name, keys)
        loaded.append((projection, table_name, events, touched, rows))
    mentioned = [
        number
        for projection, _, events, _, rows in loaded
        for number in mentioned_numbers(projection, events, rows.values())
    ]
    phones = await load_phone_book(conn, region, mentioned)
    for projection, table_name, events, touched, rows in loaded:
        stored = set(rows)
        changed = apply_events(projection, touched, rows, phones)
        await upsert_rows(conn, projection.table, table_name, list(changed.values()), stored=stored)
        if events and _log.isEnabledFor(logging.DEBUG):
            # Part of a batch written, nothing committed: tests/system/test_projector_crash.py kills on
            # this line.
            # `through` is the last event applied; a checkpoint below it after a crash means the batch was
            # cut off before its commit.
            fields = {"projection": projection.name, "table": table_name, "through": events[-1].id}
            _log.debug("projector rows written", extra={"fields": fields})


async def step(pool: asyncpg.Pool, projection: Projection, *, limit: int, region: str) -> bool:
    """One batch into the live table. Returns whether the checkpoint moved.

    The checkpoint row is locked first, so two projectors (or a projector and a rebuild's swap) take
    turns: the second reads the position the first committed and never applies an event twice.
    """
    try:
        return await _step(pool, projection, limit=limit, region=region)
    except asyncpg.InvalidCachedStatementError:
        # A migration changed the table under a statement prepared before it; asyncpg has dropped the
        # stale statement, and inside a transaction it leaves the retry to us.
        return await _step(pool, projection, limit=limit, region=region)


async def _step(pool: asyncpg.Pool, projection: Projection, *, limit: int, region: str) -> bool:
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        checkpoint = await conn.fetchrow(
            "SELECT position, error FROM projection_checkpoints WHERE name = $1 FOR UPDATE", projection.name
        )
        if checkpoint is None or checkpoint["error"] is not None:
            return False
        head = await head_position(conn)
        if checkpoint["position"] >= head:
            return False
        reached = await project_batch(
            conn,
            projection,
            projection.table.name,
            after=checkpoint["position"],
            upto=head,
            limit=limit,
            region=region,
        )
        await conn.execute(_ADVANCE, projection.name, reached, projection.version)
    after: int = checkpoint["position"]
    _log.info(
        "projector batch",
        extra={
            "fields": {
                "projection": projection.name,
                "after": after,
                "reached": reached,
                "events": reached - after,
                "behind": head - reached,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            }
        },
    )
    return True
