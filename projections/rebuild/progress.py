"""A running rebuild's progress, published in `rebuild_progress` for `/metrics` in the service.

The replay reports after each batch, from inside its own loop; the rows are written from a task of
their own, on a connection of their own, at most once a second: the replay's connections are busy
streaming and copying, and its loop must not wait on a write that only feeds a dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from service.database.pool import connect

__all__ = ["published_progress"]

_UPSERT = """
    INSERT INTO rebuild_progress (name, position, head)
    SELECT name, $2, $3 FROM unnest($1::text[]) AS name
    ON CONFLICT (name) DO UPDATE
        SET position = EXCLUDED.position, head = EXCLUDED.head, updated_at = now()
"""


class _Latest:
    def __init__(self) -> None:
        self.position = 0
        self.head = 0

    def __call__(self, position: int, head: int) -> None:
        self.position, self.head = position, head


@contextlib.asynccontextmanager
async def published_progress(
    database_url: str, names: Sequence[str], every_s: float = 1.0
) -> AsyncIterator[_Latest]:
    """Yields a callable `(position, head)`; what it was last given is written every `every_s`. On exit
    no write is left in flight, so the swap's removal of the row is the last word."""
    latest = _Latest()
    stop = asyncio.Event()
    async with connect(database_url) as conn:
        await conn.execute(_UPSERT, list(names), 0, 0)

        async def publish() -> None:
            written = (0, 0)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
                if (latest.position, latest.head) != written and not stop.is_set():
                    written = (latest.position, latest.head)
                    await conn.execute(_UPSERT, list(names), *written)

        task = asyncio.create_task(publish(), name="rebuild-progress")
        try:
            yield latest
        finally:
            stop.set()
            await task
