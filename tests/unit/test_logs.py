"""Log lines: one JSON object each, written once per turn of the event loop, never lost at shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import sys

from service.core.logs import JsonFormatter, TurnBufferedHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream) -> tuple[logging.Logger, TurnBufferedHandler]:
    handler = TurnBufferedHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger, handler


async def test_lines_of_one_turn_are_written_together_and_in_order():
    stream = CountingStream()
    logger, _ = _logger(stream)
    for n in range(5):
        logger.info("delivery", extra={"fields": {"n": n}})
    assert stream.getvalue() == ""  # not yet: the turn has not ended

    await asyncio.sleep(0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == [0, 1, 2, 3, 4]
    assert {line["msg"] for line in lines} == {"delivery"}
    assert stream.writes == 1


def test_outside_an_event_loop_each_line_is_written_at_once():
    stream = CountingStream()
    logger, _ = _logger(stream)
    logger.warning("first")
    assert json.loads(stream.getvalue())["msg"] == "first"
    logger.warning("second")
    assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["first", "second"]


async def test_lines_still_pending_are_written_when_logging_shuts_down():
    stream = CountingStream()
    logger, handler = _logger(stream)
    logger.info("last words")
    handler.flush()  # what logging.shutdown() does for every handler at exit
    assert json.loads(stream.getvalue())["msg"] == "last words"


def test_the_pools_reconnect_warnings_are_one_line_our_errors_keep_their_traceback():
    stream = CountingStream()
    handler = TurnBufferedHandler(stream)
    handler.setFormatter(JsonFormatter())
    for name in ("asyncpg.pool", "service.app"):
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            record = logging.getLogger(name).makeRecord(
                name, logging.WARNING, __file__, 1, "failed", (), sys.exc_info()
            )
        handler.handle(record)
    pool, ours = (json.loads(line) for line in stream.getvalue().splitlines())
    assert pool["error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert "exc" not in pool
    assert "Traceback" in ours["exc"]


def test_timestamps_read_as_datetime_writes_them_within_a_second_and_across_seconds():
    formatter = JsonFormatter()
    for created in [
        1_705_761_000.0,
        1_705_761_000.0004,
        1_705_761_000.9994999,
        1_705_761_000.9995,
        1_705_761_000.9999996,  # rounds up to the next second
        1_705_761_001.5,
        1_705_761_000.123456,  # back to an earlier second
        1_735_689_599.9999999,  # the last instant of a year
    ]:
        record = logging.LogRecord("test", logging.INFO, __file__, 1, "m", (), None)
        record.created = created
        expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(record))["ts"] == expected, created
