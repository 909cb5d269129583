"""Sessions on the primary only, whichever of DATABASE_URL's hosts that is now.

A URL may name several hosts (`postgresql://h1:5432,h2:5432/db`). asyncpg and libpq try them in turn
and, with `target_session_attrs=read-write`, keep the first that accepts writes: after a failover the
next connection finds the promoted standby by itself. Given several hosts, the service asks for that
even when the URL does not, so a session never settles on a standby; a URL (or PGTARGETSESSIONATTRS)
that says otherwise wins.

A session that was on the primary can still meet a read-only server: a managed endpoint whose DNS
still names the old primary, now a standby, or a server fenced with default_transaction_read_only. Its
writes then fail with read_only_sql_transaction (SQLSTATE 25006), and would for ever if the pool kept
the session: PrimaryConnection closes itself instead, so the pool opens a new one, through the hosts
again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

__all__ = ["PrimaryConnection", "host_urls", "target_session_attrs"]

_READ_WRITE = "read-write"

_log = logging.getLogger("mightycall.database")


def target_session_attrs(url: str) -> str | None:
    """ "read-write" when the URL names several hosts and does not choose, nor does the environment
    (None lets the driver read either). One host is what it is: a read-only one still serves the commands
    that only read, such as `events verify` against a replica."""
    query = parse_qs(urlsplit(url).query)
    if "target_session_attrs" in query or os.environ.get("PGTARGETSESSIONATTRS"):
        return None
    several = len(host_urls(url)) > 1 or any("," in host for host in query.get("host", []))
    return _READ_WRITE if several else None


def host_urls(url: str) -> list[str]:
    """One URL per host of `postgresql://user@h1:5432,h2:5432/db?...`, in order, each keeping the rest.

    asyncpg gives all the hosts one timeout together: a host that swallows packets (a dead machine, a
    frozen one) uses it up and the next host is never tried (MagicStack/asyncpg#1155). Tried one at a
    time, each has the whole timeout.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}")) for host in hosts.split(",")]


class PrimaryConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """An asyncpg connection that closes itself when a write finds the server read-only."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        with self._closed_if_read_only():
            return await super().execute(*args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        with self._closed_if_read_only():
            return await super().executemany(*args, **kwargs)

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        with self._closed_if_read_only():
            return await super().fetch(*args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        with self._closed_if_read_only():
            return await super().fetchval(*args, **kwargs)

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        with self._closed_if_read_only():
            return await super().fetchrow(*args, **kwargs)

    @contextmanager
    def _closed_if_read_only(self) -> Iterator[None]:
        try:
            yield
        except asyncpg.ReadOnlySQLTransactionError:
            # terminate(), not close(): nothing more is to be said to this server. The pool sees a closed
            # connection when it is released and replaces it.
            # Info, not a warning: the commands that only read may be pointed at a replica on purpose, and
            # their one write (recording a verification) says so itself. The service's answer is a 503.
            _log.info("a write met a read-only server; its session is closed")
            self.terminate()
            raise
