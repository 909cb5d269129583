"""One live batch for every projection at once: one transaction, one read of the log.

Stepping each projection on its own (runner.step) costs some ten round trips to PostgreSQL per
projection per batch, most of them the same for all four: begin, lock, head, read, checkpoint,
commit. Under load the live projector batches every few tens of milliseconds, and its process was
found mostly sending and receiving those round trips. Here the batch is read and decoded once, and
each projection adds only its own rows' lookup and write, which took a third off the projector's CPU
and more off PostgreSQL's at full ingest load (docs/performance.md).

The checkpoint rows are locked as runner.step locks one, so either may run beside the other, or
beside a rebuild's swap: a row someone else holds is skipped (SKIP LOCKED), its projection left for
the next batch, rather than made to hold up the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import asyncpg

from projections.model import Projection
from projections.runner import fetch_events, to_event, write_events

__all__ = ["step_together"]

_log = logging.getLogger("mightycall.projector")

_LOCK = """
    SELECT c.name, c.position, h.position AS head
    FROM projection_checkpoints c CROSS JOIN event_log_head h
    WHERE c.name = ANY($1::text[]) AND c.error IS NULL
    ORDER BY c.name
    FOR UPDATE OF c SKIP LOCKED
"""

# As runner.step's: the version that projects a table's first events is the one that builds it.
_ADVANCE = """
    UPDATE projection_checkpoints c
    SET position = $2, updated_at = now(),
        version = CASE WHEN c.position = 0 THEN v.version ELSE c.version END
    FROM unnest($1::text[], $3::integer[]) AS v (name, version)
    WHERE c.name = v.name
"""


async def step_together(
    conn: asyncpg.Connection, projections: Sequence[Projection], *, limit: int, region: str
) -> bool:
    """One batch of at most `limit` events into the live tables of `projections` that are behind, are
    not stopped and are not locked by someone else. Returns whether the batch stopped short of the head.

    Raises whatever one projection's part raised, with nothing of the batch written: a caller that
    must know which projection to blame steps each alone (runner.step)."""
    try:
        return await _step_together(conn, projections, limit=limit, region=region)
    except asyncpg.InvalidCachedStatementError:
        # As in runner.step: a migration changed a table under a statement prepared before it.
        return await _step_together(conn, projections, limit=limit, region=region)


async def _step_together(
    conn: asyncpg.Connection, projections: Sequence[Projection], *, limit: int, region: str
) -> bool:
    started = time.perf_counter()
    by_name = {projection.name: projection for projection in projections}
    async with conn.transaction():
        locked = await conn.fetch(_LOCK, list(by_name))
        behind = {row["name"]: row["position"] for row in locked if row["position"] < row["head"]}
        if not behind:
            return False
        head: int = locked[0]["head"]
        after = min(behind.values())
        kinds = {kind for name in behind for kind in by_name[name].kinds}
        records = await fetch_events(conn, kinds, after=after, upto=head, limit=limit)
        # Fewer than `limit`: every event up to the head has been seen, including those of other kinds.
        reached = records[-1]["id"] if len(records) == limit else head
        events = [to_event(record) for record in records]

        targets = []
        for name, position in behind.items():
            projection = by_name[name]
            own = [e for e in events if e.id > position and e.kind in projection.kinds]
            targets.append((projection, projection.table.name, own))
        await write_events(conn, targets, region)

        advanced = [name for name, position in behind.items() if position < reached]
        versions = [by_name[name].version for name in advanced]
        await conn.execute(_ADVANCE, advanced, reached, versions)
    ms = round((time.perf_counter() - started) * 1000, 3)
    for name in advanced:
        fields = {
            "projection": name,
            "after": behind[name],
            "reached": reached,
            "events": reached - behind[name],
            "behind": head - reached,
            "ms": ms,
        }
        _log.info("projector batch", extra={"fields": fields})
    return reached < head
