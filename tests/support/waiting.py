"""Waiting for a condition rather than for a duration: a loaded machine only makes the wait longer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(condition: Callable[[], bool], what: str, *, within_s: float = 60) -> None:
    """Returns once `condition()` holds; fails naming `what` after `within_s`, a guard against hanging
    (never a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)
