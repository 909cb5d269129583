"""The live projector: keeps every projection's table up to date as events are appended.

Exactly one runs at a time across any number of processes: the one holding a session advisory lock
on its own connection (not a pooled one: the lock and LISTEN both live and die with that
connection). The others wait as hot standbys and take over within seconds when it goes away.
Correctness does not rest on the lock: each batch locks its checkpoint row first (runner.step).

Only an event's own failure (its projection function raising, its rows refused for good) stops a
projection, at that event. A passing database condition holds it back and this process retries it
(projections/live/retries.py); an unreachable database makes the leader reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import asyncpg

from projections.live.joint_step import step_together
from projections.live.retries import Retries
from projections.model import Projection
from projections.runner import ProjectionFailed, step
from service.database.pool import cannot_write_now, connect, is_unavailable, passes
from service.eventlog.append import CHANNEL

__all__ = ["LiveProjector"]

_LEADER_LOCK = 0x6D63_5F70_726F_6A  # an arbitrary constant of this service: "mc_proj"

_log = logging.getLogger("mightycall.projector")


class LiveProjector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        database_url: str,
        projections: Iterable[Projection],
        *,
        region: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        standby_retry_s: float = 2.0,
        gather_s: float = 0.05,
        retries: Retries | None = None,
    ) -> None:
        self._pool = pool
        self._url = database_url
        self._projections = list(projections)
        self._region = region
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._standby_retry_s = standby_retry_s
        self._gather_s = gather_s
        self._wake = asyncio.Event()
        self._retries = retries or Retries()
        self.active = False
        """True while this process is the one projecting."""

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set; survives database outages by reconnecting."""
        while not stop.is_set():
            try:
                async with connect(self._url) as leader:
                    await self._lead(leader, stop)
            except Exception as exc:
                if is_unavailable(exc):
                    _log.warning(
                        "projector lost the database; retrying",
                        extra={"fields": {"error": type(exc).__name__}},
                    )
                else:
                    _log.error("projector failed; restarting it", exc_info=exc)
                await _sleep_unless(stop, self._standby_retry_s)
            finally:
                self.active = False

    async def _lead(self, leader: asyncpg.Connection, stop: asyncio.Event) -> None:
        """Wait to become the leader, then project while the leader connection lives."""
        while not await leader.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK):
            if await _sleep_unless(stop, self._standby_retry_s):
                return
        self.active = True
        _log.info("projector active")
        await leader.add_listener(CHANNEL, lambda *_: self._wake.set())
        # A projection stopped on an error is retried once by each new leader: the error may have been
        # fixed by the deploy that restarted it. If not, it stops again at the same event.
        await leader.execute(
            "UPDATE projection_checkpoints SET error = NULL, error_position = NULL WHERE error IS NOT NULL"
        )
        while not stop.is_set() and not leader.is_closed():
            self._wake.clear()
            await self.catch_up(stop)
            await self._retries.record(self._pool)
            retry_in = self._retries.wait_s()
            wait_s = self._poll_interval_s if retry_in is None else min(self._poll_interval_s, retry_in)
            await _wait_any((self._wake, stop), wait_s)
            # Under load every commit wakes us. A short pause lets each batch take many events rather than
            # a handful, each batch being a dozen round trips; it adds at most this much to the
            # append-to-row latency.
            await _sleep_unless(stop, self._gather_s)
            # The poll doubles as a liveness check of the connection that holds the lock.
            await leader.execute("SELECT 1")

    async def catch_up(self, stop: asyncio.Event | None = None) -> None:
        """Apply everything committed so far to every projection that is not stopped or held back, or
        until `stop`: under steady load there is always more, and a shutdown must not wait for a quiet
        moment. A held-back projection whose pause is over is tried alone, so that a lock on its table
        does not hold up the others' batches again."""
        together = [p for p in self._projections if not self._retries.held_back(p.name)]
        alone = [
            p for p in self._projections if self._retries.held_back(p.name) and self._retries.due(p.name)
        ]
        try:
            async with self._pool.acquire() as conn:
                while (
                    together
                    and not _is_set(stop)
                    and await step_together(conn, together, limit=self._batch_size, region=self._region)
                ):
                    pass
        except Exception as exc:
            if is_unavailable(exc):
                raise
            # One projection's part failed the joint batch, and with it the others': stepped each alone,
            # the others go on and the one to blame is found, and held back or stopped.
            _log.info(
                "joint projector batch failed; stepping each projection alone",
                extra={"fields": {"error": type(exc).__name__}},
            )
            alone = [p for p in self._projections if self._retries.due(p.name)]
        await self._catch_up_each(stop, alone)

    async def _catch_up_each(self, stop: asyncio.Event | None, projections: list[Projection]) -> None:
        pending = projections
        while pending and not _is_set(stop):
            pending = [projection for projection in pending if await self._advance(projection)]

    async def _advance(self, projection: Projection) -> bool:
        """One batch of the projection alone; whether there may be more. Its own failure stops it, a
        passing condition holds it back, an unreachable database is raised (the leader reconnects)."""
        try:
            try:
                moved = await step(self._pool, projection, limit=self._batch_size, region=self._region)
            except ProjectionFailed:
                raise
            except Exception as exc:
                if passes(exc):
                    raise
                # The batch failed as a whole (in SQL, say): one event alone is that event's failure
                # (runner.project_batch), so one event at a time finds the one to blame.
                moved = await step(self._pool, projection, limit=1, region=self._region)
        except ProjectionFailed as failed:
            await self._stop_projection(projection, failed)
            return False
        except Exception as exc:
            if not cannot_write_now(exc):
                raise
            self._retries.failed(projection.name, exc)
            return False
        self._retries.succeeded(projection.name)
        return moved

    async def _stop_projection(self, projection: Projection, failed: ProjectionFailed) -> None:
        _log.error(
            "projection stopped",
            extra={
                "fields": {"projection": projection.name, "position": failed.position, "error": str(failed)}
            },
        )
        await self._pool.execute(
            "UPDATE projection_checkpoints SET error = $2, error_position = $3, updated_at = now()"
            " WHERE name = $1",
            projection.name,
            str(failed),
            failed.position,
        )


async def _wait_any(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _is_set(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or return early (True) when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
