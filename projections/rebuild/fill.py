"""Filling a rebuild's shadow tables from the log until they are near its head.

One replay of the log (projections/rebuild/replay.py) fills every shadow table given; the indexes left out of
them are built once they are full, and the replay then catches up until few enough events are left for
the swap to apply while the live projector waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from projections.model import Projection
from projections.rebuild.replay import Replay
from projections.runner import head_position

__all__ = ["SWAP_BACKLOG", "OnBatch", "Shadow", "fill"]

SWAP_BACKLOG = 1000
"""The swap applies what is left with the live projector's batches, while the live projector waits: the
fill catches up until at most this many events are left for it."""

# Indexes built on a filled shadow can take longer than the connection's command timeout.
_INDEX_BUILD_TIMEOUT_S = 3600.0

OnBatch = Callable[[int, int], None]
"""Called with (position reached, head position) after each batch: the order of rebuild.Progress."""


@dataclass(frozen=True)
class Shadow:
    """A projection's table under construction."""

    projection: Projection
    table: str
    deferred_indexes: Sequence[str]
    """The definitions of the indexes to build once the table is filled: cheaper than updating them row
    by row."""


async def fill(
    reader: asyncpg.Connection,
    writer: asyncpg.Connection,
    shadows: Sequence[Shadow],
    *,
    region: str,
    batch_size: int,
    on_batch: OnBatch | None = None,
) -> int:
    """Replay the log into the empty `shadows`, build their deferred indexes, and catch up until the
    head is near; returns the position reached. `reader` reads the log; when it is not `writer`,
    reading, applying and writing overlap."""
    replay = Replay(
        [(shadow.projection, shadow.table) for shadow in shadows], region=region, batch_size=batch_size
    )
    position = 0
    indexed = False

    def reporting(head: int) -> Callable[[int], None] | None:
        return None if on_batch is None else lambda reached: on_batch(reached, head)

    while True:
        head = await head_position(writer)
        if indexed and head - position <= min(batch_size, SWAP_BACKLOG):
            return position
        position = await replay.run(
            reader,
            writer,
            after=position,
            upto=head,
            progress=reporting(head),
        )
        if not indexed:
            for shadow in shadows:
                for definition in shadow.deferred_indexes:
                    await writer.execute(definition, timeout=_INDEX_BUILD_TIMEOUT_S)
            indexed = True
