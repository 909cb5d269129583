"""Where the machine's CPU went during a load run: seconds per group of processes, as shares of it all.

On two cores the service, its projector, PostgreSQL and wrk compete for the same CPU; these shares
say which of them a faster service would have to take time from.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator

import psutil

__all__ = ["CpuShares", "cpu_shares"]

_GROUPS = ("web", "projector", "postgres", "wrk")


def _group(process: psutil.Process) -> str | None:
    try:
        name = process.name()
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if name.startswith("postgres"):
        return "postgres"
    if "service.cli project" in command:
        return "projector"
    if "service.cli serve" in command or "service.server.asgi" in command:
        return "web"
    return None


def _finished_children() -> float:
    """CPU seconds of this process's children that have exited: wrk, which runs and ends in the block."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sample() -> dict[int, tuple[str, float]]:
    seconds: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter():
        group = _group(process)
        if group is None:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            times = process.cpu_times()
            seconds[process.pid] = (group, times.user + times.system)
    return seconds


class CpuShares:
    def __init__(self) -> None:
        self.cores_busy: dict[str, float] = {}
        """Group -> cores it kept busy on average (1.0 = one core all the time)."""


@contextlib.contextmanager
def cpu_shares() -> Iterator[CpuShares]:
    """Measure the block: processes that start during it count from zero."""
    shares = CpuShares()
    before, wrk_before, started = _sample(), _finished_children(), time.monotonic()
    yield shares
    after, elapsed = _sample(), time.monotonic() - started
    busy = dict.fromkeys(_GROUPS, 0.0)
    busy["wrk"] = _finished_children() - wrk_before
    for pid, (group, seconds) in after.items():
        busy[group] += seconds - before.get(pid, (group, 0.0))[1]
    shares.cores_busy = {group: round(seconds / elapsed, 2) for group, seconds in busy.items()}
    shares.cores_busy["idle"] = round(max(0.0, (os.cpu_count() or 1) - sum(busy.values()) / elapsed), 2)
