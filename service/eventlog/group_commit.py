"""Group commit: concurrent deliveries share one append transaction, each answered after its commit.

Appends are serialised by the lock on the log's head (service/eventlog/append.py), and each commit waits for
its flush to disk. One transaction per webhook would pay both for every request; here a single worker
takes everything that queued up while the previous commit was in flight and commits it together.
Under light load a batch is one delivery, so nobody waits for a batch to fill.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from service.core.errors import DatabaseUnavailable, Overloaded, UnknownOrganization
from service.database.pool import cannot_write_now, is_unavailable
from service.eventlog.append import Appended, Delivery, append

__all__ = ["Appender"]

_log = logging.getLogger("mightycall.append")

_Pending = tuple[Delivery, "asyncio.Future[Appended]"]


class Appender:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, max_pending: int = 10_000) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._conn: asyncpg.Connection | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="appender")

    async def close(self) -> None:
        """Commit everything already queued, then stop. Deliveries arriving after this get a 503."""
        self._closing = True
        if self._worker is not None:
            self._queue.put_nowait(None)
            await self._worker
            self._worker = None
        await self._release()

    async def append(self, delivery: Delivery) -> Appended:
        """Resolve once the delivery is durably committed (or found already logged)."""
        if self._closing or self._worker is None:
            raise DatabaseUnavailable("the service is shutting down; retry later")
        if self._queue.qsize() >= self._max_pending:
            raise Overloaded("too many deliveries waiting to be written; retry later")
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((delivery, future))
        # If the client goes away the future is cancelled, but the append still happens: a delivery
        # that was queued is committed, and the client's retry is then answered as a duplicate.
        return await future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch: list[_Pending] = []
            stop = first is None
            if first is not None:
                batch.append(first)
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                await self._commit(batch)
            if stop and self._queue.empty():
                return

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        try:
            results = await self._append([delivery for delivery, _ in batch])
        except Exception as exc:
            # A timeout or a full disk is no one delivery's fault: retrying each alone would only meet it
            # once per delivery. Like an outage, it is a 503 for the whole batch.
            if len(batch) > 1 and not (is_unavailable(exc) or cannot_write_now(exc)):
                # One delivery must not sink the others: retry each alone to find the culprit.
                for pending in batch:
                    await self._commit([pending])
                return
            for _, future in batch:
                _settle(future, exception=_translate(exc))
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    async def _append(self, deliveries: list[Delivery]) -> list[Appended]:
        # The connection is kept between batches: the pool would reset it at every release, a round trip
        # (and a twentieth of the process's CPU under load) for a session that an append leaves as it
        # found it. One statement, its own transaction: committed (and flushed) when it returns.
        if self._conn is None:
            self._conn = await self._pool.acquire()
        try:
            return await append(self._conn, deliveries)
        except Exception:
            # Whatever went wrong, the pool decides whether the connection is still fit to use.
            await self._release()
            raise

    async def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._pool.release(conn)


def _translate(exc: Exception) -> Exception:
    if is_unavailable(exc):
        return DatabaseUnavailable("the database is not reachable; retry later")
    if cannot_write_now(exc):
        # The operator must hear of a full disk or a lock held too long, but once, not with a traceback.
        _log.error("append refused by the database", extra={"fields": {"error": type(exc).__name__}})
        return DatabaseUnavailable("the database cannot complete the write now; retry later")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return UnknownOrganization("the organization does not exist")
    _log.error("append failed", exc_info=exc)
    return exc


def _settle(
    future: asyncio.Future[Appended], *, result: Appended | None = None, exception: Exception | None = None
) -> None:
    if future.done():  # the request was cancelled while it waited
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        assert result is not None
        future.set_result(result)
