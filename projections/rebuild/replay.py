"""Replaying the log into rebuilds' shadow tables: one read of the log for any number of projections.

Each batch of events is read once, decoded once, and given to every projection that takes its kinds.
For each projection, the rows the batch touches come
- from memory, when the previous batch touched them too (a key that recurs costs no lookup);
- from the shadow table, when the Bloom filter of the keys written so far says they may be there;
- from nowhere otherwise: most keys of a log are new when a replay first meets them, and looking each
  one up only to find nothing was most of the old rebuild's time.
The events are applied by the same code as the live projector's (runner.apply_events), so the rows are
the same. A row is written once the batches stop touching it (or the run ends), so a key that recurs
batch after batch is written once, not once a batch: new rows with COPY, the others with the live
projector's upsert.

Given two connections, the log is read on one, a batch ahead, and each batch's rows are written on the
other while the next batch is decoded and applied, so PostgreSQL's work and Python's overlap.
Memory is bounded by the batch size, the filters' fixed size and the phone book's limit, never by the
length of the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncGenerator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

import asyncpg

from projections.model import Event, Key, Projection, Row
from projections.rebuild.bloom import Bloom
from projections.runner import (
    apply_events,
    fetch_events,
    load_phone_book,
    mentioned_numbers,
    to_event,
    touched_keys,
)
from projections.store import load_rows, members, upsert_rows
from service.core.phones import PhoneBook

__all__ = ["PHONE_BOOK_LIMIT", "Replay"]

PHONE_BOOK_LIMIT = 50_000
"""The phone book is loaded whole, once, when it has at most this many numbers (a few hundred bytes
each in memory); a bigger one is looked up batch by batch, as the live projector does."""


@dataclass
class _ReplayedTable:
    """What a replay keeps in memory for one Shadow (rebuild/fill.py) it fills."""

    projection: Projection
    table_name: str
    seen: Bloom
    """Every key the replay has made a row for (and, rarely, some it has not)."""
    carry: dict[Key, Row] = field(default_factory=dict)
    """The rows the last batch touched, as they are now."""
    pending: set[Key] = field(default_factory=set)
    """The keys of `carry` whose row is newer than the table's."""
    absent: set[Key] = field(default_factory=set)
    """The keys of `pending` that the table has no row for at all: inserted, where the others are
    upserted."""

    def __post_init__(self) -> None:
        self.columns = list(self.projection.table.columns)
        # A table has at least its id and a key column, so itemgetter gives a tuple.
        self.as_record: Callable[[Row], tuple[Any, ...]] = itemgetter(*self.columns)


@dataclass
class _Work:
    """One projection's share of one batch."""

    shadow: _ReplayedTable
    events: list[Event]
    touched: list[tuple[Event, list[Key]]]
    rows: dict[Key, Row]
    """The rows found so far: carried over from the last batch, then loaded."""
    lookup: list[Key]
    """The keys that may be in the table and are not in `rows`."""


@dataclass
class _Write:
    shadow: _ReplayedTable
    new: list[Row]
    changed: list[Row]


class Replay:
    """Replays the log into the shadow tables of `projections` (projection, table name), which must be
    empty when the first run begins and written by nothing else until the last one ends."""

    def __init__(
        self,
        projections: Sequence[tuple[Projection, str]],
        *,
        region: str,
        batch_size: int,
        bloom_bytes: int = 4 << 20,
    ) -> None:
        self._shadows = [
            _ReplayedTable(projection, name, Bloom(bloom_bytes)) for projection, name in projections
        ]
        self._region = region
        self._batch_size = batch_size
        self._phones: PhoneBook | None = None
        self._phones_loaded = False

    async def run(
        self,
        reader: asyncpg.Connection,
        writer: asyncpg.Connection,
        *,
        after: int,
        upto: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply the events in (after, upto] to the shadow tables; returns `upto`, which must be a
        committed head position. `reader` reads the log; when it is not `writer`, reading, writing and
        applying overlap."""
        if not self._phones_loaded:
            self._phones = await _whole_phone_book(writer, self._region)
            self._phones_loaded = True
        with _without_cycle_collection():
            await self._run(reader, writer, after=after, upto=upto, progress=progress)
        return upto

    async def _run(
        self,
        reader: asyncpg.Connection,
        writer: asyncpg.Connection,
        *,
        after: int,
        upto: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        overlap = reader is not writer
        kinds = frozenset().union(*(shadow.projection.kinds for shadow in self._shadows))
        batches = _batches(reader, kinds, after=after, upto=upto, size=self._batch_size, ahead=overlap)
        writing: asyncio.Future[None] | None = None
        reached = after
        try:
            async with contextlib.aclosing(batches):
                async for records in batches:
                    reached = records[-1]["id"]
                    # Decoding and applying hold the event loop for a while: in a thread, they leave it
                    # free to move the reads and writes in flight along.
                    work = await asyncio.to_thread(self._gather, records)
                    phones = self._phones
                    if phones is None or any(part.lookup for part in work):
                        # The writer's connection is needed: let the batch before finish with it.
                        if writing is not None:
                            await writing
                            writing = None
                        phones = await self._load(writer, work)
                    writes = await asyncio.to_thread(self._apply, work, phones)
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(_write(writer, writes))
                    if not overlap:
                        await writing
                        writing = None
                    # Memory holds about one batch: let this one's records and events go before the next
                    # one arrives, not after.
                    del records, work, writes
                    if progress is not None:
                        progress(reached)
            if writing is not None:
                await writing
                writing = None
            await _write(writer, [self._flush(shadow) for shadow in self._shadows])
            if progress is not None and reached != upto:
                # The events after the last of our kinds, if any, are passed too: say so, or a replay
                # of kinds that the log's last events are not of would never report reaching the head.
                progress(upto)
        finally:
            if writing is not None:
                # The replay failed while a batch was being written: that write's outcome does not
                # matter (the shadow tables are abandoned), the first error does.
                with contextlib.suppress(Exception):
                    await writing

    def _gather(self, records: list[asyncpg.Record]) -> list[_Work]:
        """Decode the batch once; for each projection, its events, their keys and the rows at hand."""
        events = [to_event(record) for record in records]
        by_kind: dict[str, list[Event]] = {}
        for event in events:
            by_kind.setdefault(event.kind, []).append(event)
        work = []
        for shadow in self._shadows:
            kinds = shadow.projection.kinds
            if len(kinds) == 1:
                [kind] = kinds
                mine = by_kind.get(kind, [])
            else:
                mine = [event for event in events if event.kind in kinds]
            touched = touched_keys(shadow.projection, mine)
            keys = set(chain.from_iterable(map(itemgetter(1), touched)))
            carry, seen = shadow.carry, shadow.seen
            rows = {key: carry[key] for key in keys & carry.keys()}
            lookup = [key for key in keys - carry.keys() if key in seen]
            work.append(_Work(shadow, mine, touched, rows, lookup))
        return work

    async def _load(self, writer: asyncpg.Connection, work: list[_Work]) -> PhoneBook:
        """Load the rows that may exist; returns the phone book for the batch."""
        for part in work:
            if part.lookup:
                table = part.shadow.projection.table
                part.rows.update(await load_rows(writer, table, part.shadow.table_name, part.lookup))
        if self._phones is not None:
            return self._phones
        mentioned = [
            number
            for part in work
            for number in mentioned_numbers(part.shadow.projection, part.events, part.rows.values())
        ]
        return await load_phone_book(writer, self._region, mentioned)

    @staticmethod
    def _apply(work: list[_Work], phones: PhoneBook) -> list[_Write]:
        """Apply each share of the batch; returns the rows the batch no longer touches, to write."""
        writes = []
        for part in work:
            shadow, rows = part.shadow, part.rows
            found = set(rows)
            changed = apply_events(shadow.projection, part.touched, rows, phones).keys()
            new = changed - found
            shadow.seen.add(new)
            writes.append(_evict(shadow, shadow.pending - rows.keys()))
            shadow.pending = (shadow.pending & rows.keys()) | changed
            shadow.absent = (shadow.absent & rows.keys()) | new
            shadow.carry = rows
        return writes

    @staticmethod
    def _flush(shadow: _ReplayedTable) -> _Write:
        """Every row not written yet, to write now. The rows are dropped from memory too: the next run
        comes after a pause (an index build, a swap) and finds them in the table."""
        write = _evict(shadow, shadow.pending)
        shadow.carry, shadow.pending, shadow.absent = {}, set(), set()
        return write


def _evict(shadow: _ReplayedTable, keys: set[Key]) -> _Write:
    carry = shadow.carry
    return _Write(
        shadow,
        new=[carry[key] for key in keys & shadow.absent],
        changed=[carry[key] for key in keys - shadow.absent],
    )


async def _write(conn: asyncpg.Connection, writes: list[_Write]) -> None:
    if not any(write.new or write.changed for write in writes):
        return
    async with conn.transaction():
        # A crash loses nothing but the shadow tables, which the next rebuild starts over: there is no
        # need to wait for each batch to reach the disk.
        await conn.execute("SET LOCAL synchronous_commit = off")
        for write in writes:
            shadow = write.shadow
            if write.new:
                rows = members(shadow.projection.table, write.new)
                await conn.copy_records_to_table(
                    shadow.table_name, columns=shadow.columns, records=map(shadow.as_record, rows)
                )
            await upsert_rows(conn, shadow.projection.table, shadow.table_name, write.changed)


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector off, then back as it was. Each batch keeps a few hundred thousand
    objects alive for a moment; the collector promoted them to its oldest generation and traversed all
    of it again and again, which took half of the replay's time. They die by reference counting: a
    replay of 200,000 events leaves some ten objects in cycles, collected once it ends (when little is
    left alive for the collector to go through)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _batches(
    conn: asyncpg.Connection, kinds: Collection[str], *, after: int, upto: int, size: int, ahead: bool
) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The log's records of `kinds` in (after, upto], `size` at a time. With `ahead`, each batch is
    fetched while the one before it is being handled: `conn` must then be used by nothing else."""
    fetch = partial(fetch_events, conn, kinds, upto=upto, limit=size)
    following: asyncio.Task[list[asyncpg.Record]] | None = None
    try:
        records = await fetch(after=after)
        while True:
            last = records[-1]["id"] if len(records) == size else None
            if last is not None and ahead:
                following = asyncio.ensure_future(fetch(after=last))
            if records:
                yield records
            records = []  # not kept while the next batch is fetched
            if last is None:
                return
            if following is None:
                records = await fetch(after=last)
            else:
                records = await following
                following = None
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await following


async def _whole_phone_book(conn: asyncpg.Connection, region: str) -> PhoneBook | None:
    """Every imported number, or None when there are more than PHONE_BOOK_LIMIT. Numbers imported
    while the replay runs are not seen by it; the rebuild after their import links them."""
    rows = await conn.fetch(
        "SELECT org_id, e164, id FROM phone_numbers WHERE e164 IS NOT NULL LIMIT $1", PHONE_BOOK_LIMIT + 1
    )
    if len(rows) > PHONE_BOOK_LIMIT:
        return None
    return PhoneBook(region, {(row["org_id"], row["e164"]): row["id"] for row in rows})
