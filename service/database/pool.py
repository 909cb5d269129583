"""Connections to PostgreSQL, and the one place where asyncpg's errors are translated."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from service.core.errors import DatabaseUnavailable
from service.database.primary import PrimaryConnection, host_urls, target_session_attrs

__all__ = [
    "cannot_write_now",
    "connect",
    "create_pool",
    "is_unavailable",
    "passes",
    "translate_unavailable",
]

T = TypeVar("T")

# A request must get its 503 within a few seconds when the database is gone, never hang: these bound
# how long a connection attempt and a single command may take.
CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 10.0

_SERVER_SETTINGS = {
    # A 2xx promises the event is durable; a server configured with synchronous_commit=off would make
    # that promise false, so the service insists on it for its own sessions.
    "synchronous_commit": "on",
    # asyncpg prepares every statement, and after five runs PostgreSQL may keep one generic plan for it.
    # Planned while a table was still small, that plan can scan the whole table for ever after: the
    # dedupe lookup of every append then grew with the log (9k appends/s fell to 2.5k in 60k events).
    # Planning each run costs tens of microseconds and always sees the table as it is.
    "plan_cache_mode": "force_custom_plan",
}

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # A pooled connection the server cut while it sat idle (a fast shutdown, say) can fail its next
    # command with this instead of a connection error: it is the same outage. It is also what a connect
    # raises when every host it was given is up but none is a primary (TargetServerAttributeNotMatched).
    asyncpg.InternalClientError,
    # A write reached a server that is (or has become) a standby. Not the statement's fault: the primary
    # is elsewhere, or being promoted. PrimaryConnection closes the session, and the next finds the primary.
    asyncpg.ReadOnlySQLTransactionError,
)


# The database refused a statement for now: a statement_timeout or lock_timeout (another session
# holding a lock we need), a cancel, a deadlock or a serialization failure (the other transaction went
# on), or a full disk. Nothing of it was written and a later retry may well succeed, so, like an outage,
# it is a 503 for the client to retry, and the live projector retries it (projections/live/retries.py).
_CANNOT_WRITE_NOW = (
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.DiskFullError,
)


def cannot_write_now(exc: BaseException) -> bool:
    """True when the database refused the statement for a reason that a later retry may not meet."""
    return isinstance(exc, _CANNOT_WRITE_NOW)


def passes(exc: BaseException) -> bool:
    """True when a later retry of the same statement may succeed: the database cannot be reached now, or
    it refused the statement for now (cannot_write_now)."""
    return is_unavailable(exc) or cannot_write_now(exc)


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "the database cannot be reached now", as opposed to a bad statement."""
    return isinstance(exc, _UNAVAILABLE)


async def translate_unavailable(operation: Callable[[], Awaitable[T]]) -> T:
    try:
        return await operation()
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable("the database is not reachable; retry later") from exc
        raise


def _server_settings() -> dict[str, str]:
    # The process id in the application name says which process a session belongs to, e.g. which of
    # several `serve` processes holds the live projector's lock (pg_stat_activity joined to pg_locks).
    return {"application_name": f"mightycall-ingest/{os.getpid()}", **_SERVER_SETTINGS}


# The host of each URL that last gave a primary: tried first next time, so that once a failover is over
# new sessions do not wait for the dead host's timeout.
_last_primary: dict[str, str] = {}


async def _connect_to_primary(url: str, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, trying the URL's hosts one at a time, each with the whole timeout."""
    hosts = host_urls(url)
    last = _last_primary.get(url)
    if last in hosts:
        hosts.remove(last)
        hosts.insert(0, last)
    failure: BaseException | None = None
    for host in hosts:
        try:
            conn = await asyncpg.connect(host, **kwargs)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            failure = exc
            continue
        _last_primary[url] = host
        return conn
    assert failure is not None
    raise failure


async def create_pool(
    url: str, *, min_size: int = 2, max_size: int = 10, settings: dict[str, str] | None = None
) -> asyncpg.Pool:
    """`settings`: session settings of this pool's connections besides the service's own."""
    pool = await asyncpg.create_pool(
        url,
        connect=_connect_to_primary,
        min_size=min_size,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S,
        server_settings={**_server_settings(), **(settings or {})},
        connection_class=PrimaryConnection,
        target_session_attrs=target_session_attrs(url),
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A single connection, for the command line and for work that must not share a pool."""
    conn = await _connect_to_primary(
        url,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S,
        server_settings=_server_settings(),
        connection_class=PrimaryConnection,
        target_session_attrs=target_session_attrs(url),
    )
    try:
        yield conn
    finally:
        await conn.close()
