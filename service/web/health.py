"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Response, get

from projections.status import projection_lags
from service.database.migrations import head_revision
from service.database.pool import is_unavailable

__all__ = ["health", "readiness_handler"]


@get("/health", summary="The process is alive", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def readiness_handler(pool_of: Any, max_lag_s: float) -> Any:
    """`pool_of()` returns the app's pool, which exists only once the lifespan has started."""

    @get("/ready", summary="The database is reachable, its schema at head, no projection stopped or behind")
    async def ready() -> Response[dict[str, Any]]:
        pool: asyncpg.Pool | None = pool_of()
        if pool is None:
            return _not_ready("starting")
        try:
            version = await pool.fetchval("SELECT version_num FROM alembic_version")
        except Exception as exc:
            if is_unavailable(exc):
                return _not_ready("database unreachable")
            if isinstance(exc, asyncpg.UndefinedTableError):
                return _not_ready("database not migrated: run `mightycall-ingest migrate`")
            raise
        if version != head_revision():
            return _not_ready(f"schema at {version}, code expects {head_revision()}: run migrate")
        lags = await projection_lags(pool)
        stopped = [lag for lag in lags if lag.stopped]
        if stopped:
            where = ", ".join(f"{lag.name} at event {lag.error_position}" for lag in stopped)
            return _not_ready(
                f"projection stopped on an error: {where}; see `mightycall-ingest projections status`"
            )
        # No projector running anywhere, or one that cannot keep up: the tables are going stale.
        behind = [lag for lag in lags if lag.seconds > max_lag_s]
        if behind:
            where = ", ".join(f"{lag.name} by {lag.seconds:.0f} s ({lag.events} events)" for lag in behind)
            return _not_ready(
                f"projection behind the log by more than {max_lag_s:g} s: {where};"
                " is a `serve` with its projector running?"
            )
        return Response({"ready": True}, status_code=200)

    return ready


def _not_ready(reason: str) -> Response[dict[str, Any]]:
    return Response({"ready": False, "reason": reason}, status_code=503)
