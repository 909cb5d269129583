"""The live projector's retries of a held-back projection: pauses that double up to a cap, on a clock
of the test's (never the wall clock), and one log line per episode however many retries it takes."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from projections.live.retries import Retries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pauses(retries: Retries, clock: Clock, times: int) -> list[float]:
    """Fail `times` in a row, each as soon as it is due; the pause each failure earned."""
    pauses = []
    for _ in range(times):
        assert retries.due("calls")
        retries.failed("calls", asyncpg.LockNotAvailableError("lock timeout"))
        wait = retries.wait_s()
        assert wait is not None
        pauses.append(wait)
        clock.now += wait
    return pauses


def test_the_pause_doubles_up_to_the_cap_and_a_success_ends_the_episode():
    clock = Clock()
    retries = Retries(first_s=0.1, cap_s=1.0, clock=clock)
    assert retries.wait_s() is None and retries.due("calls") and not retries.held_back("calls")

    assert _pauses(retries, clock, 6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert retries.held_back("calls") and not retries.held_back("sms")

    retries.failed("calls", asyncpg.LockNotAvailableError("lock timeout"))
    assert not retries.due("calls")  # its pause is not over
    assert retries.due("sms")  # the others are not held back
    clock.now += 0.5
    assert not retries.due("calls")
    clock.now += 0.6
    assert retries.due("calls")

    retries.succeeded("calls")
    assert not retries.held_back("calls") and retries.wait_s() is None
    # A new episode starts from the first pause again.
    assert _pauses(retries, clock, 2) == pytest.approx([0.1, 0.2])


def test_one_line_starts_an_episode_and_one_ends_it(caplog):
    caplog.set_level(logging.WARNING, logger="mightycall.projector")
    clock = Clock()
    retries = Retries(clock=clock)
    _pauses(retries, clock, 5)
    retries.succeeded("calls")
    retries.succeeded("calls")  # not held back any more: nothing to say
    _pauses(retries, clock, 3)

    lines = [(r.getMessage(), r.fields) for r in caplog.records if r.name == "mightycall.projector"]
    started = {"projection": "calls", "reason": "LockNotAvailableError", "sqlstate": "55P03"}
    assert [message for message, _ in lines] == [
        "projection held back by the database; retrying",
        "projection no longer held back",
        "projection held back by the database; retrying",
    ]
    assert lines[0][1] == lines[2][1] == started
    assert lines[1][1]["retries"] == 5
