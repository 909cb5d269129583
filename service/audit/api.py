"""The read-only audit API. Audit tokens open it; webhook secrets never do (and the other way round).

A token limited to one organization sees the others' events as if they did not exist: 404, never 403.
With no audit token configured the whole API is absent (404), rather than open.

The routes are a litestar Controller; the app provides what they need as dependencies: `pool` (the
service's pool, from the app's state) and `audit_access` (the tokens and the long reads running, one
per app, given by `audit_router`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Request, Response, Router, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, SkipValidation
from litestar.response import Stream

from service.audit.export import EXPORT_PAGING, THROUGH_HEADER, export_params, export_through, stream_through
from service.audit.queries import (
    EventFilter,
    event_json,
    export_line,
    get_event,
    list_events,
    list_rejected,
    page_params,
)
from service.audit.standalone_verifier import standalone_verifier
from service.audit.trace import trace
from service.core.errors import Forbidden, InvalidQuery, NotFound, TooManyRequests
from service.eventlog.verify import Checkpoint, record_verification, verify_log
from service.web.auth import BearerAuth

__all__ = [
    "EVENT_FILTERS",
    "MAX_LONG_READS",
    "PAGING",
    "REJECTED_FILTERS",
    "AuditAccess",
    "AuditController",
    "Pool",
    "audit_router",
    "query_params",
]

MAX_LONG_READS = 2
"""Exports and verifications running at once, per process. Each holds a database connection for as
long as it reads the whole log: more of them would take the pool (10) from the webhooks."""

EVENT_FILTERS = {"kind", "event_type", "org_id", "external_id", "request_id", "since", "until"}
REJECTED_FILTERS = {"kind", "since", "until"}
PAGING = {"after", "limit"}
_encode_line = msgspec.json.Encoder().encode
# What an original Content-Type may be echoed as: a plain media type with parameters, nothing else.
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
    r"([ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=[A-Za-z0-9!#$&^_.+\"-]+)*"
)

_Request = Request[Any, Any, Any]
# Provided by the app, not read from the request (as audit_router provides `audit_access`).
Pool = NamedDependency[SkipValidation[asyncpg.Pool]]


def query_params(request: _Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each given once and `allowed`; the audit page (service/audit/ui/routes.py)
    too."""
    pairs = list(request.query_params.multi_items())
    params = dict(pairs)
    # A mistyped filter ("org" for "org_id") would otherwise silently widen the answer to everything.
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidQuery(
            f"unknown query parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
        )
    # Which of two values would count is anyone's guess: neither does.
    repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:
        raise InvalidQuery(f"query parameter(s) given more than once: {', '.join(repeated)}")
    # PostgreSQL text cannot hold NUL: refused here rather than failing the query.
    with_nul = sorted(name for name, value in params.items() if "\x00" in value)
    if with_nul:
        raise InvalidQuery(f"query parameter(s) holding NUL: {', '.join(with_nul)}")
    return params


class _LongReads:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def refuse_if_full(self) -> None:
        if self.active >= self.limit:
            raise TooManyRequests(f"{self.limit} exports or verifications are running; retry later")

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def take(self) -> _Slot:
        """A slot, counted at once: with no await between the check and the count, a burst of
        requests cannot all pass the check before any of them is counted."""
        self.refuse_if_full()
        self.active += 1
        return _Slot(self)


class _Slot:
    """One running long read; freed once, by whichever comes first: the stream's end, or the stream
    being dropped unstarted (a client gone before the first line: its generator never runs a finally)."""

    def __init__(self, reads: _LongReads) -> None:
        self._reads: _LongReads | None = reads

    def release(self) -> None:
        if self._reads is not None:
            self._reads.active -= 1
            self._reads = None

    def __del__(self) -> None:
        self.release()


def _refuse_scoped(allowed: UUID | None) -> None:
    # The head's position counts every organization's events, and a verification's failure reason can
    # point into another's: a token limited to one organization gets neither.
    if allowed is not None:
        raise Forbidden("a token limited to one organization cannot see the whole log's head or verification")


@dataclass
class AuditAccess:
    """The audit API's own state, one per app: the tokens that open it, the long reads running."""

    auth: BearerAuth
    long_reads: _LongReads = field(default_factory=lambda: _LongReads(MAX_LONG_READS))

    def scope(self, request: _Request) -> UUID | None:
        """The organization the request's token is limited to (None: all), or Unauthorized."""
        return self.auth.check(request.headers.getall("authorization", []))


_Access = NamedDependency[SkipValidation[AuditAccess]]


def audit_router(auth: BearerAuth) -> Router:
    """The audit API at /audit, opened by `auth`'s tokens; the app provides `pool`."""
    access = AuditAccess(auth)

    async def provide_access() -> AuditAccess:
        return access

    return Router(
        "/audit", route_handlers=[AuditController], dependencies={"audit_access": Provide(provide_access)}
    )


class AuditController(Controller):
    @get("/events", summary="Events of the log, filtered, in pages")
    async def events(self, request: _Request, audit_access: _Access, pool: Pool) -> dict[str, Any]:
        allowed = audit_access.scope(request)
        params = query_params(request, EVENT_FILTERS | PAGING)
        event_filter = EventFilter.parse(params, allowed)
        after, limit = page_params(params)
        async with pool.acquire() as conn:
            page = await list_events(conn, event_filter, after=after, limit=limit)
        return page.as_json()

    @get("/events/{event_id:int}", summary="One event: its envelope and decoded payload")
    async def event(
        self, request: _Request, event_id: FromPath[int], audit_access: _Access, pool: Pool
    ) -> dict[str, Any]:
        allowed = audit_access.scope(request)
        async with pool.acquire() as conn:
            row = await get_event(conn, event_id, allowed)
        if row is None:
            raise NotFound(f"no event {event_id}")
        return event_json(row)

    @get(
        "/events/{event_id:int}/raw",
        summary="The exact bytes received",
        media_type="application/octet-stream",
    )
    async def raw(
        self, request: _Request, event_id: FromPath[int], audit_access: _Access, pool: Pool
    ) -> Response[bytes]:
        allowed = audit_access.scope(request)
        async with pool.acquire() as conn:
            row = await get_event(conn, event_id, allowed)
        if row is None:
            raise NotFound(f"no event {event_id}")
        content_type = row["content_type"] or ""
        if not _MEDIA_TYPE.fullmatch(content_type):
            content_type = "application/octet-stream"
        return Response(
            bytes(row["body"]),
            media_type=content_type,
            headers={
                # As received: given as a header, litestar does not append a charset of its own.
                "Content-Type": content_type,
                "X-Body-SHA256": bytes(row["body_sha256"]).hex(),
                # The bytes are whatever the sender sent: never let a browser run them.
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            },
        )

    @get("/export", summary="Matching events as NDJSON, with bodies (base64) and chain hashes")
    async def export(self, request: _Request, audit_access: _Access, pool: Pool) -> Stream:
        allowed = audit_access.scope(request)
        params = query_params(request, EVENT_FILTERS | EXPORT_PAGING)
        event_filter = EventFilter.parse(params, allowed)
        after, limit = export_params(params)
        slot = audit_access.long_reads.take()
        try:
            async with pool.acquire() as conn:
                through = await export_through(conn, event_filter, after=after, limit=limit)
        except BaseException:
            slot.release()
            raise

        async def lines() -> AsyncIterator[bytes]:
            try:
                async with pool.acquire() as conn:
                    async for row in stream_through(conn, event_filter, after=after, through=through):
                        yield _encode_line(export_line(row)) + b"\n"
            finally:
                slot.release()

        return Stream(lines(), media_type="application/x-ndjson", headers={THROUGH_HEADER: str(through)})

    @get("/rejected", summary="Authenticated deliveries that were refused, with the reason")
    async def rejected(self, request: _Request, audit_access: _Access, pool: Pool) -> dict[str, Any]:
        allowed = audit_access.scope(request)
        params = query_params(request, REJECTED_FILTERS | PAGING)
        after, limit = page_params(params)
        async with pool.acquire() as conn:
            page = await list_rejected(conn, params, allowed, after=after, limit=limit)
        return page.as_json()

    @get("/verify", summary="Recompute every hash of the log and check it against the checkpoints")
    async def verify(self, request: _Request, audit_access: _Access, pool: Pool) -> dict[str, Any]:
        _refuse_scoped(audit_access.scope(request))
        query_params(request, set())
        audit_access.long_reads.refuse_if_full()
        with audit_access.long_reads.running():
            async with pool.acquire() as conn:
                result = await verify_log(conn)
                await record_verification(conn, result, by="api")
        return result.as_json()

    @get("/checkpoint", summary="The log's head now: keep it outside the database")
    async def checkpoint(self, request: _Request, audit_access: _Access, pool: Pool) -> dict[str, Any]:
        _refuse_scoped(audit_access.scope(request))
        query_params(request, set())
        async with pool.acquire() as conn:
            head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
        assert head is not None
        return Checkpoint(head["position"], bytes(head["hash"]), dt.datetime.now(dt.UTC)).as_json()

    @get("/trace", summary="The events behind one projected row, in log order")
    async def trace_row(self, request: _Request, audit_access: _Access, pool: Pool) -> dict[str, Any]:
        allowed = audit_access.scope(request)
        params = query_params(request, {"table", "key", "org_id"})
        event_filter = EventFilter.parse({"org_id": params.get("org_id", "")}, allowed)
        if not params.get("table") or not params.get("key"):
            raise InvalidQuery("`table` and `key` are required")
        if event_filter.org_id is None:
            raise InvalidQuery("`org_id` is required")
        if event_filter.nothing:
            return {"events": [], "next_after": None}
        async with pool.acquire() as conn:
            found = await trace(conn, params["table"], params["key"], event_filter.org_id)
        return {"events": found, "next_after": None}

    @get("/verifier.py", summary="The standalone verifier of exports (Python, standard library only)")
    async def verifier(self, request: _Request, audit_access: _Access) -> Response[bytes]:
        audit_access.scope(request)
        query_params(request, set())
        return standalone_verifier()
