"""Reading the log for auditors: filters, pages, single events and streams, shared by the audit API
and the `events` commands."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from service.core.errors import InvalidQuery
from service.core.payloads import KINDS
from service.ingest.redrive import IN_LOG

__all__ = [
    "MAX_LIMIT",
    "EventFilter",
    "Page",
    "event_json",
    "export_line",
    "get_event",
    "list_events",
    "list_rejected",
    "stream_events",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_POSITION = 2**63 - 1
"""event_log.id is a bigint."""
_COLUMNS = (
    "id, received_at, kind, event_type, org_id, external_id, content_type, body, body_sha256, prev_hash,"
    " hash, request_id, admitted_from"
)
_STREAM_CHUNK = 500


def _timestamp(name: str, raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidQuery(f"`{name}` must be an RFC 3339 timestamp such as 2024-01-20T14:30:00Z") from None
    if moment.tzinfo is None:
        raise InvalidQuery(f"`{name}` needs a time zone offset, such as Z or +02:00")
    try:
        moment.astimezone(dt.UTC)  # as the database will have it
    except OverflowError:
        raise InvalidQuery(f"`{name}` is out of range once converted to UTC") from None
    return moment


def _whole(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"`{name}` must be a whole number") from None
    if not low <= value <= high:
        raise InvalidQuery(f"`{name}` must be between {low} and {high}")
    return value


@dataclass(frozen=True, slots=True)
class EventFilter:
    kind: str | None = None
    event_type: str | None = None
    org_id: UUID | None = None
    external_id: str | None = None
    request_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    nothing: bool = False
    """True when the auditor's scope rules out every event (another organization was asked for)."""

    @classmethod
    def parse(cls, params: Mapping[str, str], scope: UUID | None) -> EventFilter:
        kind = params.get("kind") or None
        if kind is not None and kind not in KINDS:
            raise InvalidQuery(f"`kind` must be one of {', '.join(KINDS)}")
        org_id = None
        if params.get("org_id"):
            try:
                org_id = UUID(params["org_id"])
            except ValueError:
                raise InvalidQuery("`org_id` must be a UUID") from None
        since = _timestamp("since", params["since"]) if params.get("since") else None
        until = _timestamp("until", params["until"]) if params.get("until") else None
        nothing = scope is not None and org_id is not None and org_id != scope
        return cls(
            kind=kind,
            event_type=params.get("event_type") or None,
            org_id=scope or org_id,
            external_id=params.get("external_id") or None,
            request_id=params.get("request_id") or None,
            since=since,
            until=until,
            nothing=nothing,
        )

    def where(self, after: int) -> tuple[str, list[Any]]:
        conditions: list[str] = ["id > $1"]
        args: list[Any] = [after]
        for column, value, operator in (
            ("kind", self.kind, "="),
            ("event_type", self.event_type, "="),
            ("org_id", self.org_id, "="),
            ("external_id", self.external_id, "="),
            ("request_id", self.request_id, "="),
            ("received_at", self.since, ">="),
            ("received_at", self.until, "<"),
        ):
            if value is not None:
                args.append(value)
                conditions.append(f"{column} {operator} ${len(args)}")
        if self.nothing:
            conditions.append("false")
        return " AND ".join(conditions), args


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_after: int | None

    def as_json(self) -> dict[str, Any]:
        return {"events": self.items, "next_after": self.next_after}


def page_params(params: Mapping[str, str]) -> tuple[int, int]:
    """(after, limit) from query parameters."""
    return (
        _whole("after", params.get("after"), 0, 0, MAX_POSITION),
        _whole("limit", params.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT),
    )


def _payload(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        # Accepted bodies decode with the service's types; an unknown field may hold a number that
        # untyped decoding cannot represent, or (accepted before nesting was bounded) nest deeper than
        # this stack allows. The raw bytes stay available from /raw.
        return None


def event_json(row: asyncpg.Record) -> dict[str, Any]:
    """An event as the audit API shows it: the envelope's fields, flat, and the decoded payload."""
    return {
        "id": row["id"],
        "received_at": row["received_at"],
        "kind": row["kind"],
        "event_type": row["event_type"],
        "org_id": row["org_id"],
        "external_id": row["external_id"],
        "body_sha256": bytes(row["body_sha256"]).hex(),
        "request_id": row["request_id"],
        "admitted_from": row["admitted_from"],
        "payload": _payload(row["body"]),
    }


def export_line(row: asyncpg.Record) -> dict[str, Any]:
    """An event with everything needed to verify it offline: the body and its place in the chain."""
    return {
        **event_json(row),
        "content_type": row["content_type"],
        "prev_hash": bytes(row["prev_hash"]).hex(),
        "hash": bytes(row["hash"]).hex(),
        "body_base64": base64.b64encode(row["body"]).decode(),
    }


async def list_events(conn: asyncpg.Connection, event_filter: EventFilter, *, after: int, limit: int) -> Page:
    where, args = event_filter.where(after)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM event_log WHERE {where} ORDER BY id LIMIT {limit + 1}",
        *args,
    )
    return _page(rows, limit, event_json)


async def get_event(conn: asyncpg.Connection, event_id: int, scope: UUID | None) -> asyncpg.Record | None:
    """The event, or None when it does not exist or belongs to an organization the scope excludes."""
    if not 1 <= event_id <= MAX_POSITION:
        return None  # no such position, and PostgreSQL's bigint could not even be asked for it
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM event_log WHERE id = $1 AND ($2::uuid IS NULL OR org_id = $2)",
        event_id,
        scope,
    )


async def stream_events(conn: asyncpg.Connection, event_filter: EventFilter) -> AsyncIterator[asyncpg.Record]:
    """Every matching event in log order, read in chunks: memory stays flat however long the log."""
    where, args = event_filter.where(0)
    async with conn.transaction(readonly=True):
        cursor = conn.cursor(
            f"SELECT {_COLUMNS} FROM event_log WHERE {where} ORDER BY id", *args, prefetch=_STREAM_CHUNK
        )
        async for row in cursor:
            yield row


async def list_rejected(
    conn: asyncpg.Connection, params: Mapping[str, str], scope: UUID | None, *, after: int, limit: int
) -> Page:
    """Rejected deliveries. They may have no organization (refused before one was known), so an
    auditor limited to one organization sees none of them."""
    event_filter = EventFilter.parse(
        {k: v for k, v in params.items() if k in ("kind", "since", "until")}, None
    )
    where, args = event_filter.where(after)
    if scope is not None:
        where += " AND false"
    rows = await conn.fetch(
        f"SELECT {_REJECTED_COLUMNS}"
        f" FROM (SELECT * FROM rejected_deliveries WHERE {where} ORDER BY id LIMIT {limit + 1}) r"
        f" {IN_LOG}"
        " LEFT JOIN LATERAL (SELECT * FROM rejection_admissions a WHERE a.rejection_id = r.id"
        "                    ORDER BY a.id DESC LIMIT 1) a ON true"
        " ORDER BY r.id",
        *args,
    )
    return _page(rows, limit, _rejected)


_REJECTED_COLUMNS = (
    "r.id, r.received_at, r.kind, r.reason, r.details, r.content_type, r.body_size, r.body, r.request_id,"
    " l.id AS in_log_as, a.outcome AS admission_outcome, a.attempted_at AS admission_at,"
    " a.reason AS admission_reason, a.details AS admission_details, a.event_id AS admission_event_id"
)


def _rejected(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "received_at": row["received_at"],
        "kind": row["kind"],
        "reason": row["reason"],
        "details": row["details"],
        "content_type": row["content_type"],
        "body_size": row["body_size"],
        "request_id": row["request_id"],
        "body_base64": None if row["body"] is None else base64.b64encode(row["body"]).decode(),
        # Whether the body is in the log now, by whatever path: admitted, or resent by MightyCall.
        "in_log_as": row["in_log_as"],
        "last_admission": None
        if row["admission_outcome"] is None
        else {
            "outcome": row["admission_outcome"],
            "attempted_at": row["admission_at"],
            "event_id": row["admission_event_id"],
            "reason": row["admission_reason"],
            "details": row["admission_details"],
        },
    }


def _page(rows: list[asyncpg.Record], limit: int, item: Callable[[asyncpg.Record], dict[str, Any]]) -> Page:
    """A page from up to `limit + 1` rows: the extra one only says that there is more."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([item(row) for row in rows], rows[-1]["id"] if more else None)
