"""`/audit/ui`: the audit API's read-only view as server-rendered pages for a browser, no JavaScript.

It reads through the same queries and the same parameter checks as the JSON API (service/audit/api.py,
service/audit/queries.py), with the same scopes: an auditor limited to one organization gets 404 for
another's event. The token is typed in once; a signed cookie stands for it (service/audit/ui/session.py).
Like the API, the pages exist only when an audit token is configured.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import asyncpg
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import MediaType, ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from projections.status import projection_statuses
from service.audit.api import EVENT_FILTERS, PAGING, REJECTED_FILTERS, Pool, query_params
from service.audit.queries import EventFilter, export_line, get_event, list_events, list_rejected, page_params
from service.audit.ui.html import ROOT, error_page, login_page, page
from service.audit.ui.pages import (
    LastCheckpoint,
    LastVerification,
    event_content,
    events_content,
    rejected_content,
    status_content,
)
from service.audit.ui.session import COOKIE, MAX_AGE_S, Session, Sessions, expiry_of
from service.audit.ui.signouts import is_signed_out, sign_out
from service.core.errors import InvalidQuery, NotFound, RequestTimeout
from service.eventlog.chain import GENESIS_HASH
from service.web.webhooks import BODY_TIMEOUT_S

__all__ = ["SECURITY_HEADERS", "audit_ui_router"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_MAX_FORM_BYTES = 4096
"""A sign-in form holds one token: anything larger is not one."""
_FIRST_FILTERS = ("kind", "event_type", "org_id", "external_id", "since", "until")
_LAST_CHECKPOINT = """
    SELECT c.position, c.head_hash, c.created_at, e.hash AS log_hash
    FROM audit_checkpoints c LEFT JOIN event_log e ON e.id = c.position
    ORDER BY c.id DESC LIMIT 1
"""
_LAST_VERIFICATION = """
    SELECT verified_at, ok, head_position, head_hash, failure_position, failure_reason,
           checkpoints_checked, by
    FROM audit_verifications ORDER BY id DESC LIMIT 1
"""

_Request = Request[Any, Any, Any]


class _SecurityHeaders(ASGIMiddleware):
    """On every answer under /audit/ui, the error pages included: set on the way out, they cannot be
    forgotten by a handler."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)


def _html(content: str, status_code: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(content, status_code=status_code, media_type=MediaType.HTML, cookies=cookies)


def _cookie(request: _Request, value: str, max_age: int) -> Cookie:
    # Secure whenever the page was reached over HTTPS: directly, or through a proxy that uvicorn trusts
    # (FORWARDED_ALLOW_IPS; its X-Forwarded-Proto then sets the scheme). Over plain HTTP a browser would
    # drop a Secure cookie, and the page could not be signed in to at all.
    return Cookie(
        key=COOKIE,
        value=value,
        max_age=max_age,
        path=ROOT,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _refuse_cross_site(request: _Request) -> Response[str] | None:
    # SameSite=Strict keeps the cookie off other sites' requests; this also stops another site from
    # signing a browser in or out (browsers say where a form came from; other clients say nothing).
    if request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none"):
        return None
    return _html(error_page(403, "forms here can only be sent from these pages"), 403)


def audit_ui_router(tokens: Iterable[tuple[str, UUID | None]]) -> Router:
    """The audit pages at ROOT, signed in with `tokens`; the app provides `pool`."""
    sessions = Sessions(tokens)

    async def session_of(request: _Request, pool: asyncpg.Pool) -> Session | None:
        value = request.cookies.get(COOKIE)
        session = sessions.check(value)
        if session is not None and value is not None:
            async with pool.acquire() as conn:
                if await is_signed_out(conn, value):
                    session = None
        request.state.audit_ui_session = session  # for the error pages, whose handler cannot await
        return session

    def error(request: _Request, exc: Exception) -> Response[str]:
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, str(exc.detail)
        else:  # InvalidQuery or NotFound: their details name the parameter or the id, nothing more
            assert isinstance(exc, InvalidQuery | NotFound)
            status, message = (404 if isinstance(exc, NotFound) else 400), exc.details
        session = getattr(request.state, "audit_ui_session", None)
        return _html(error_page(status, message, False if session is None else session.scope), status)

    @get("/", name="audit-ui")
    async def events(request: _Request, pool: Pool) -> Response[str]:
        if (session := await session_of(request, pool)) is None:
            return _html(login_page())
        params = query_params(request, EVENT_FILTERS | PAGING)
        event_filter = EventFilter.parse(params, session.scope)
        after, limit = page_params(params)
        async with pool.acquire() as conn:
            found = await list_events(conn, event_filter, after=after, limit=limit)
        # The filters the API knows, in a reading order; any it gains later show up at the end.
        names = [*_FIRST_FILTERS, *sorted(EVENT_FILTERS - set(_FIRST_FILTERS))]
        return _html(page("Events", events_content(params, names, found), session.scope))

    @get("/events/{event_id:int}")
    async def event(request: _Request, event_id: FromPath[int], pool: Pool) -> Response[str]:
        if (session := await session_of(request, pool)) is None:
            return _html(login_page())
        query_params(request, set())
        async with pool.acquire() as conn:
            row = await get_event(conn, event_id, session.scope)
        if row is None:
            raise NotFound(f"no event {event_id}")
        body = bytes(row["body"])
        fields = {k: v for k, v in export_line(row).items() if k not in ("payload", "body_base64")}
        matches = hashlib.sha256(body).digest() == bytes(row["body_sha256"])
        return _html(page(f"Event {event_id}", event_content(fields, body, matches), session.scope))

    @get("/rejected")
    async def rejected(request: _Request, pool: Pool) -> Response[str]:
        if (session := await session_of(request, pool)) is None:
            return _html(login_page())
        params = query_params(request, REJECTED_FILTERS | PAGING)
        after, limit = page_params(params)
        async with pool.acquire() as conn:
            found = await list_rejected(conn, params, session.scope, after=after, limit=limit)
        content = rejected_content(params, found, scoped=session.scope is not None)
        return _html(page("Rejected deliveries", content, session.scope))

    @get("/status")
    async def status(request: _Request, pool: Pool) -> Response[str]:
        if (session := await session_of(request, pool)) is None:
            return _html(login_page())
        query_params(request, set())
        if session.scope is not None:
            # The head counts every organization's events; a projection's error can quote another's
            # payload. As /audit/verify and /audit/checkpoint, refused to a token limited to one.
            message = "a token limited to one organization cannot see the whole log's status"
            return _html(error_page(403, message, session.scope), 403)
        async with pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            # One snapshot: the head, the projections, the checkpoint and the verification as of the same
            # moment (the events appended since the verification are counted against this head).
            statuses = await projection_statuses(conn)
            head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
            last = await conn.fetchrow(_LAST_CHECKPOINT)
            verified = await conn.fetchrow(_LAST_VERIFICATION)
        assert head is not None
        checkpoint = None
        if last is not None:
            expected = GENESIS_HASH if last["position"] == 0 else last["log_hash"]
            checkpoint = LastCheckpoint(
                last["position"],
                bytes(last["head_hash"]),
                last["created_at"],
                expected is not None and bytes(expected) == bytes(last["head_hash"]),
            )
        verification = None if verified is None else LastVerification(**dict(verified))
        content = status_content(statuses, (head["position"], bytes(head["hash"])), checkpoint, verification)
        return _html(page("Projections and verification", content, session.scope))

    @post("/login", request_max_body_size=_MAX_FORM_BYTES)
    async def login(request: _Request) -> Response[Any]:
        if (refused := _refuse_cross_site(request)) is not None:
            return refused
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await request.body()
        except TimeoutError:
            raise RequestTimeout(f"the form did not arrive within {BODY_TIMEOUT_S:g} s") from None
        try:
            form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
        except ValueError:
            form = {}
        value = sessions.sign_in(form.get("token", [""])[0].strip())
        if value is None:
            # Nothing about what was typed: not in the page, not in a log.
            return _html(login_page("That token was not accepted."), 401)
        return Redirect(ROOT, status_code=303, cookies=[_cookie(request, value, MAX_AGE_S)])

    @post("/logout", request_max_body_size=_MAX_FORM_BYTES)
    async def logout(request: _Request, pool: Pool) -> Response[Any]:
        if (refused := _refuse_cross_site(request)) is not None:
            return refused
        value = request.cookies.get(COOKIE)
        if value is not None and sessions.check(value) is not None:
            # Ended for every process, not only dropped from this browser.
            async with pool.acquire() as conn:
                await sign_out(conn, value, expiry_of(value))
        return Redirect(ROOT, status_code=303, cookies=[_cookie(request, "", 0)])

    return Router(
        ROOT,
        route_handlers=[events, event, rejected, status, login, logout],
        middleware=[_SecurityHeaders()],
        exception_handlers={InvalidQuery: error, NotFound: error, HTTPException: error},
        # Pages for people, not part of the API the schema describes.
        include_in_schema=False,
    )
