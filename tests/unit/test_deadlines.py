"""Deadlines (the webhooks' body timeout): what asyncio.timeout promises, for many tasks at once.

Every wait here ends on a condition (an event set, a block given up on); the small timeouts only make
the waits short, nothing asserts how long anything took."""

from __future__ import annotations

import asyncio

import pytest

from service.web.deadlines import Deadlines


async def test_a_block_that_ends_in_time_is_left_as_it_was():
    deadlines = Deadlines(30.0)
    with deadlines:
        await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation is left pending for later


async def test_a_block_past_its_time_raises_timeout_error_and_the_task_goes_on():
    deadlines = Deadlines(0.01, tick_s=0.005)
    never = asyncio.Event()
    with pytest.raises(TimeoutError), deadlines:
        await never.wait()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    with deadlines:  # the same deadlines serve the task again
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)  # past another deadline: nothing was left to cancel the task


async def test_a_block_that_ends_past_its_time_before_a_tick_is_a_timeout_error_too():
    # No tick comes in time to give up on it: it ends on its own, late, and is refused all the same.
    deadlines = Deadlines(0.0, tick_s=3600.0)
    with pytest.raises(TimeoutError), deadlines:
        await asyncio.sleep(0.001)


async def test_of_many_tasks_only_those_past_their_time_are_given_up_on():
    # The test ticks the deadlines itself, so that which blocks are past their time does not depend on
    # how fast this machine runs them: three begin already due, five with an hour to go.
    deadlines = Deadlines(0.0, tick_s=3600.0)
    release, stuck_in, all_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
    entered: list[str] = []

    async def block(name: str) -> str:
        with deadlines:
            entered.append(name)
            if len(entered) == 3:
                stuck_in.set()
            if len(entered) == 8:
                all_in.set()
            await release.wait()
        return "done"

    stuck = [asyncio.create_task(block("stuck")) for _ in range(3)]
    await stuck_in.wait()
    deadlines.timeout_s = 3600.0
    quick = [asyncio.create_task(block("quick")) for _ in range(5)]
    await all_in.wait()
    deadlines._tick()
    done = await asyncio.gather(*stuck, return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in done), done
    release.set()
    assert await asyncio.gather(*quick) == ["done"] * 5


async def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    deadlines = Deadlines(30.0)
    inside = asyncio.Event()

    async def reading() -> None:
        with deadlines:
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(reading())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_at_the_deadline_stays_a_cancellation():
    deadlines = Deadlines(0.0, tick_s=3600.0)  # past its time at once; the test ticks it
    inside = asyncio.Event()

    async def reading() -> None:
        with deadlines:
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(reading())
    await inside.wait()
    # Both cancel it before it runs again: the deadline's tick and a shutdown.
    deadlines._tick()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
