"""A time limit on a block of a task, as `asyncio.timeout` gives, for a block that every webhook enters.

`asyncio.timeout` schedules a timer when its block begins and cancels it when it ends: a timer made and
dropped for every webhook, though nearly every body has arrived before its handler runs. `Deadlines`
notes when each block in flight must end, and one timer, ticking only while some block is in flight,
gives up on those past their time: entering and leaving a block is a dict entry put and taken. The
price is precision: a block that never ends is given up on between `timeout_s` and `timeout_s + tick_s`
after it began. One that ends past `timeout_s` is a TimeoutError all the same, so no block is let
through late.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """`with deadlines:` inside a task: TimeoutError if the block has not ended `timeout_s` (plus up to
    a tick) after it began. One block per task at a time; blocks of any number of tasks at once."""

    def __init__(self, timeout_s: float, *, tick_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._tick_s = tick_s if tick_s is not None else min(1.0, timeout_s / 4)
        # task -> (loop time it must be done by, how many cancellations it had pending when it began)
        self._running: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline applies to a task"
        loop = task.get_loop()
        self._running[task] = (loop.time() + self.timeout_s, task.cancelling())
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_later(self._tick_s, self._tick)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadline, cancelling = self._running.pop(task)
        if kind is None and task.get_loop().time() > deadline:
            # Done, but late: what arrives after its time is refused as if it had not arrived, so the
            # limit is exact for what is accepted; only giving up on a block that never ends waits a tick.
            raise TimeoutError
        if task in self._expired:
            self._expired.discard(task)
            # As asyncio.timeout: only a cancellation that was ours alone becomes a TimeoutError; one
            # from elsewhere (a shutdown) goes on as it is.
            if task.uncancel() <= cancelling and kind is asyncio.CancelledError:
                raise TimeoutError from error

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for task, (deadline, _) in self._running.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()  # delivered where the task waits, inside its block
        self._timer = self._loop.call_later(self._tick_s, self._tick) if self._running else None
