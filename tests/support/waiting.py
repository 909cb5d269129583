"""Waiting for a condition rather than for a duration: a loaded machine only makes the wait longer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["poll_until", "wait_until"]


async def wait_until(condition: Callable[[], bool], what: str, *, within_s: float = 60) -> None:
    """Returns once `condition()` holds; fails naming `what` after `within_s`, a guard against hanging
    (never a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)


async def poll_until(check: Callable[[], Awaitable[object]], what: str, *, within_s: float = 60) -> None:
    """wait_until for a condition that must be awaited (a query): returns once `await check()` is truthy.
    `check` may raise to fail at once, when what it sees means the awaited state can no longer come."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)
