"""The live projector's retries of a projection that a passing database condition held back.

A lock held past the lock_timeout, a statement_timeout, a cancel, a deadlock, a serialization failure
or a full disk (service/database/pool.py `cannot_write_now`) is not the event's fault: the same process
tries the projection again, after a pause that doubles up to a cap, until the condition passes. Stopping
it instead would leave it stopped until a new leader cleared the error, that is until a restart.

One log line starts an episode and one ends it, however many retries it took: a lock held for an hour
must not write a line per retry. Each retry is counted in the database, not in this process's memory:
the projector runs in a process of its own, and /metrics is served by the web process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

__all__ = ["Retries"]

_log = logging.getLogger("mightycall.projector")

_COUNT = """
    INSERT INTO projection_retries (name, reason, retries)
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
    ON CONFLICT (name, reason) DO UPDATE
    SET retries = projection_retries.retries + EXCLUDED.retries, last_at = now()
"""


@dataclass(slots=True)
class _Episode:
    started: float
    reason: str
    attempts: int = 0
    next_at: float = 0.0


class Retries:
    """Which projections are held back, until when, and the retries not yet counted in the database."""

    def __init__(
        self, *, first_s: float = 0.1, cap_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._first_s = first_s
        self._cap_s = cap_s
        self._clock = clock
        self._episodes: dict[str, _Episode] = {}
        self._uncounted: dict[tuple[str, str], int] = {}

    def held_back(self, name: str) -> bool:
        return name in self._episodes

    def due(self, name: str) -> bool:
        """Whether the projection may be tried now: it is not held back, or its pause is over."""
        episode = self._episodes.get(name)
        return episode is None or self._clock() >= episode.next_at

    def wait_s(self) -> float | None:
        """Until the next held-back projection may be tried again; None when none is held back."""
        if not self._episodes:
            return None
        return max(0.0, min(e.next_at for e in self._episodes.values()) - self._clock())

    def failed(self, name: str, exc: BaseException) -> None:
        """The projection's batch met a passing condition: pause it, doubling the pause up to the cap."""
        reason = type(exc).__name__
        now = self._clock()
        episode = self._episodes.get(name)
        if episode is None:
            episode = self._episodes[name] = _Episode(started=now, reason=reason)
            # The error's class and SQLSTATE only: its message may quote a row.
            fields = {"projection": name, "reason": reason, "sqlstate": getattr(exc, "sqlstate", None)}
            _log.warning("projection held back by the database; retrying", extra={"fields": fields})
        episode.attempts += 1
        episode.next_at = now + min(self._cap_s, self._first_s * 2 ** (episode.attempts - 1))
        self._uncounted[name, reason] = self._uncounted.get((name, reason), 0) + 1

    def succeeded(self, name: str) -> None:
        """The projection's batch went through: its episode, if any, is over."""
        episode = self._episodes.pop(name, None)
        if episode is not None:
            fields = {
                "projection": name,
                "reason": episode.reason,
                "retries": episode.attempts,
                "seconds": round(self._clock() - episode.started, 3),
            }
            _log.warning("projection no longer held back", extra={"fields": fields})

    async def record(self, pool: asyncpg.Pool) -> None:
        """Add the retries not yet counted to the database's counters. A database that refuses this too
        (the same full disk) gets them at a later call: nothing is lost, nothing is raised."""
        if not self._uncounted:
            return
        counts = dict(self._uncounted)
        names, reasons = zip(*counts, strict=True)
        try:
            await pool.execute(_COUNT, list(names), list(reasons), list(counts.values()))
        except Exception:  # counting must not stop projecting; the episode is logged already
            return
        for key, count in counts.items():
            left = self._uncounted.pop(key) - count
            if left:
                self._uncounted[key] = left
