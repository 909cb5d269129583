"""Liveness, readiness to take webhooks, and the projections' state for alerting."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Response, get

from projections.status import ProjectionLag, projection_lags
from service.database.migrations import head_revision, known_revisions
from service.database.pool import is_unavailable

__all__ = ["health", "projections_readiness_handler", "readiness_handler"]


@get("/health", summary="The process is alive", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def readiness_handler(pool_of: Any) -> Any:
    """`pool_of()` returns the app's pool, which exists only once the lifespan has started.

    Only what stops a webhook from being stored: a probe that takes a process out of rotation must
    never do so because a read table is behind, or every delivery would fail while the log could take it.
    """

    @get("/ready", summary="Ready to take webhooks: the database reachable as a primary, its schema at head")
    async def ready() -> Response[dict[str, Any]]:
        pool: asyncpg.Pool | None = pool_of()
        if pool is None:
            return _not_ready("starting")
        try:
            # A standby answers reads, so reachable is not enough: every append there would fail.
            if await pool.fetchval("SELECT pg_is_in_recovery()"):
                return _not_ready("database is a standby (in recovery): webhooks need the primary")
            version = await pool.fetchval("SELECT version_num FROM alembic_version")
        except Exception as exc:
            if reason := _database_reason(exc):
                return _not_ready(reason)
            raise
        if version == head_revision():
            return Response({"ready": True}, status_code=200)
        if version in known_revisions():
            return _not_ready(f"schema at {version}, code expects {head_revision()}: run migrate")
        # A newer version has migrated and this process is yet to be restarted into it. Migrations add
        # (docs/operations.md, Upgrade), so it goes on taking webhooks: were it unready, a rolling upgrade
        # would take every old process out of rotation at once, between `migrate` and their restarts.
        return Response(
            {"ready": True, "schema": f"at {version}, newer than this code's {head_revision()}: restart"},
            status_code=200,
        )

    return ready


def projections_readiness_handler(pool_of: Any, max_lag_s: float) -> Any:
    """The projections' counterpart of /ready, for alerting and dashboards, never for routing."""

    @get(
        "/ready/projections",
        summary="No projection stopped, none further behind the log than MIGHTYCALL_READY_MAX_LAG_SECONDS",
    )
    async def projections_ready() -> Response[dict[str, Any]]:
        pool: asyncpg.Pool | None = pool_of()
        if pool is None:
            return _not_ready("starting")
        try:
            lags = await projection_lags(pool)
        except Exception as exc:
            if reason := _database_reason(exc):
                return _not_ready(reason)
            raise
        reasons = _projection_reasons(lags, max_lag_s)
        if reasons:
            return _not_ready("; ".join(reasons))
        return Response({"ready": True}, status_code=200)

    return projections_ready


def _projection_reasons(lags: list[ProjectionLag], max_lag_s: float) -> list[str]:
    reasons = []
    stopped = [lag for lag in lags if lag.stopped]
    if stopped:
        where = ", ".join(f"{lag.name} at event {lag.error_position}" for lag in stopped)
        reasons.append(f"projection stopped on an error: {where}; see `mightycall-ingest projections status`")
    # No projector running anywhere, one that cannot keep up, or one the database holds back (a lock on
    # the table, a full disk: it retries until that passes): the tables are going stale. A stopped
    # projection is named once, above, though its lag grows too.
    behind = [lag for lag in lags if lag.seconds > max_lag_s and not lag.stopped]
    if behind:
        where = ", ".join(f"{lag.name} by {lag.seconds:.0f} s ({lag.events} events)" for lag in behind)
        reasons.append(
            f"projection behind the log by more than {max_lag_s:g} s: {where};"
            " is a `serve` with its projector running, or is the database holding it back (a lock, a full"
            " disk: `mightycall_projection_retries_total` rises)?"
        )
    return reasons


def _database_reason(exc: Exception) -> str | None:
    if is_unavailable(exc):
        return "database unreachable"
    if isinstance(exc, asyncpg.UndefinedTableError):
        return "database not migrated: run `mightycall-ingest migrate`"
    return None


def _not_ready(reason: str) -> Response[dict[str, Any]]:
    return Response({"ready": False, "reason": reason}, status_code=503)
