"""create_app(): the one place where the service is wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig

from projections.live.projector import LiveProjector
from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from service.audit.api import audit_router
from service.audit.ui.routes import audit_ui_router
from service.core.config import ConfigError, Settings
from service.core.errors import IngestError
from service.database.pool import create_pool
from service.eventlog.group_commit import Appender
from service.ingest.ingestion import Ingestion
from service.ingest.organizations import OrgResolver
from service.web.answers import HEADERS, log_unexpected, retry_later, status_of
from service.web.auth import BearerAuth
from service.web.front import Front
from service.web.health import health, projections_readiness_handler, readiness_handler
from service.web.metrics import metrics_handler
from service.web.request_ids import add_request_id, request_id
from service.web.webhooks import BODY_TIMEOUT_S, Webhooks, webhook_routes

__all__ = ["create_app"]

_log = logging.getLogger("mightycall.app")


def create_app(settings: Settings, database_url: str, *, body_timeout_s: float = BODY_TIMEOUT_S) -> Front:
    if not settings.webhook_secrets:
        raise ConfigError("MIGHTYCALL_WEBHOOK_SECRET is not set; there is no default secret")
    if {token for token, _ in settings.audit_tokens} & set(settings.webhook_secrets):
        raise ConfigError("an audit token must not also be a webhook secret: each must open only its own API")
    webhooks = Webhooks(
        auth=BearerAuth(settings.webhook_secrets),
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=body_timeout_s,
    )
    audit: list[HTTPRouteHandler | Router] = []
    if settings.audit_tokens:
        tokens, scopes = zip(*settings.audit_tokens, strict=True)
        audit = [audit_router(BearerAuth(tokens, scopes)), audit_ui_router(settings.audit_tokens)]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(database_url)
        app.state.pool = pool
        appender = Appender(pool)
        appender.start()
        observe_append = webhooks.metrics.append_seconds.observe
        webhooks.ingestion = Ingestion(pool, OrgResolver(pool), appender, observe_append)
        stop_projector = asyncio.Event()
        projector = None
        await _warn_if_rebuild_due(pool)
        if settings.run_projector:
            live = LiveProjector(pool, database_url, PROJECTIONS.values(), region=settings.default_region)
            projector = asyncio.create_task(live.run(stop_projector), name="projector")
        try:
            yield
        finally:
            stop_projector.set()
            if projector is not None:
                await projector
            # Everything already accepted into the queue is committed (and answered) before the pool closes.
            await appender.close()
            await pool.close()

    app = Litestar(
        route_handlers=[
            *webhook_routes(),
            *audit,
            health,
            readiness_handler(lambda: webhooks.pool),
            projections_readiness_handler(lambda: webhooks.pool, settings.ready_max_lag_s),
            metrics_handler(webhooks.metrics, lambda: webhooks.pool),
        ],
        lifespan=[lifespan],
        # Handlers that read the database take it as `pool`: the pool the lifespan opened.
        dependencies={"pool": Provide(_pool)},
        before_send=[add_request_id],
        exception_handlers={
            IngestError: _ingest_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        openapi_config=OpenAPIConfig(title="mightycall-ingest", version="0.1.0", path="/schema"),
        # Logging is the service's own (service/core/logs.py): litestar's default would replace the root
        # handlers with its own format.
        logging_config=None,
        debug=False,
    )
    return Front(app, webhooks.answer)


async def _pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


async def _warn_if_rebuild_due(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for status in await projection_statuses(conn):
            if status.rebuild_due:
                _log.warning(
                    "projection table built by an older version: run `mightycall-ingest rebuild %s`",
                    status.name,
                    extra={"fields": {"projection": status.name, "table_version": status.table_version}},
                )


def _error(
    status: int, error: str, details: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    return Response({"error": error, "details": details}, status_code=status, headers=headers)


def _ingest_error(_: Request[Any, Any, Any], exc: IngestError) -> Response[dict[str, str]]:
    status = status_of(exc)
    return _error(status, exc.reason, exc.details, HEADERS.get(status))


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    return _error(exc.status_code, "http_error", str(exc.detail))


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    unavailable = retry_later(exc)
    if unavailable is not None:
        return _ingest_error(request, unavailable)
    log_unexpected(exc, request.url.path, request_id(request.scope))
    return _error(500, "internal_error", "unexpected error; it has been logged")
