"""`projections status`, `project` and `rebuild`: the engineer's commands for the projections."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from projections.live.projector import LiveProjector
from projections.rebuild.rebuild import rebuild_many
from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from service.core.config import ConfigError, Settings
from service.core.logs import configure_logging
from service.database.pool import connect, create_pool

__all__ = ["project", "rebuild_projections", "status_table"]

_log = logging.getLogger("mightycall.projections")

# Below the client's command timeout (service/database/pool.py), which the projector would take for a
# lost database: a lock someone holds on a projection's table (a migration, an operator's LOCK) ends
# the wait as a lock_timeout instead, which holds that projection back and is retried in place.
_PROJECTOR_LOCK_TIMEOUT = "5s"


async def status_table(url: str) -> str:
    async with connect(url) as conn:
        statuses = await projection_statuses(conn)
    lines = [f"{'projection':<12}{'version':>8}{'table':>7}{'position':>10}{'lag':>8}  state"]
    for s in statuses:
        state = f"stopped at event {s.error_position}: {s.error}" if s.error else "running"
        if s.rebuild_due:
            state += f"; rebuild due (table built by version {s.table_version})"
        lines.append(f"{s.name:<12}{s.version:>8}{s.table_version:>7}{s.position:>10}{s.lag:>8}  {state}")
    return "\n".join(lines)


async def project(url: str, settings: Settings) -> None:
    """The live projector alone, until SIGTERM or SIGINT."""
    configure_logging()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stop.set)
    pool = await create_pool(url, settings={"lock_timeout": _PROJECTOR_LOCK_TIMEOUT})
    try:
        await LiveProjector(pool, url, PROJECTIONS.values(), region=settings.default_region).run(stop)
    finally:
        await pool.close()


def _chosen(names: Sequence[str], everything: bool) -> list[str]:
    if everything:
        return list(PROJECTIONS)
    unknown = [name for name in names if name not in PROJECTIONS]
    if unknown or not names:
        raise ConfigError(f"name projections to rebuild ({', '.join(PROJECTIONS)}) or give --all")
    return list(dict.fromkeys(names))


async def rebuild_projections(url: str, settings: Settings, names: Sequence[str], everything: bool) -> str:
    """Rebuild the chosen projections at once: those that read the same kinds share one replay of the log."""
    chosen = _chosen(names, everything)
    report = _ProgressReport(sys.stderr)
    positions = await rebuild_many(
        url, [PROJECTIONS[name] for name in chosen], region=settings.default_region, progress=report
    )
    report.finish()
    return "\n".join(f"{name}: rebuilt up to event {positions[name]}" for name in chosen)


class _ProgressReport:
    """A progress bar on a terminal; a plain line every few seconds otherwise (logs, CI). A rebuild
    replays in up to one process per core: the bar follows the replay furthest behind, and the plain
    lines come for each replay. Each replay's pace is reckoned from its start (position 0), which for a
    replay that waited for a free process comes long after the rebuild's."""

    def __init__(
        self, out: TextIO, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._out = out
        self._tty = out.isatty()
        self._clock = clock
        self._started = clock()
        self._every_s = every_s
        self._latest: dict[str, tuple[int, int]] = {}
        self._since: dict[str, float] = {}
        self._written: dict[str, float] = {}
        self._line = ""

    def __call__(self, name: str, position: int, head: int) -> None:
        now = self._clock()
        self._latest[name] = (position, head)
        if position == 0:
            self._since[name] = now
        if self._tty:
            name, (position, head) = min(self._latest.items(), key=lambda item: _done(*item[1]))
            rate, eta = self._pace(now, name, position, head)
            filled = int(30 * _done(position, head))
            bar = "#" * filled + "." * (30 - filled)
            line = f"\r{name} [{bar}] {position:,}/{head:,} events  {rate:,.0f}/s  ETA {eta}"
            # Shorter than the line before it: blank out what would be left of that one.
            self._out.write(line.ljust(len(self._line)))
            self._out.flush()
            self._line = line
        elif now - self._written.get(name, self._started) >= self._every_s or position == head:
            self._written[name] = now
            rate, eta = self._pace(now, name, position, head)
            self._out.write(f"{name}: {position:,}/{head:,} events, {rate:,.0f}/s, ETA {eta}\n")

    def _pace(self, now: float, name: str, position: int, head: int) -> tuple[float, str]:
        """Events per second since the replay started, and the time left at that pace."""
        rate = position / max(now - self._since.get(name, self._started), 1e-6)
        if position >= head:
            return rate, "0s"
        return rate, f"{(head - position) / rate:,.0f}s" if rate > 0 else "?"

    def finish(self) -> None:
        if self._tty and self._line:
            self._out.write("\n")


def _done(position: int, head: int) -> float:
    return position / head if head else 1.0
