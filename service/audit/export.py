"""Exports that can be cut and resumed: `after` a position, up to a position fixed when the export starts.

An export first fixes `through`, the last matching position it will hold (or `after` when none match),
then streams the matching events in `(after, through]` in log order. Appends are serialised and take
ascending positions in commit order (alembic 0006), and the log is append-only: once a position is
visible, every one below it is committed and none can change or appear. So the events in
`(after, through]` are the same set however long the stream takes, whatever is appended meanwhile:
one snapshot. Resuming with `after=<the last id received>` gives exactly the rest of it (and of
anything matching since), in order, nothing skipped, nothing twice.

Resuming by `since` is not safe: received_at is taken before a body has arrived, positions at commit,
so a slow delivery can hold a later position and an earlier received_at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import asyncpg

from service.audit.queries import _COLUMNS, MAX_POSITION, EventFilter
from service.core.errors import InvalidQuery

__all__ = ["EXPORT_PAGING", "THROUGH_HEADER", "export_params", "export_through", "stream_through"]

EXPORT_PAGING = {"after", "limit"}
THROUGH_HEADER = "X-Export-Through"
_CHUNK = 500


def _position(name: str, raw: str | None, low: int) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"`{name}` must be a whole number") from None
    if not low <= value <= MAX_POSITION:
        raise InvalidQuery(f"`{name}` must be between {low} and {MAX_POSITION}")
    return value


def export_params(params: Mapping[str, str]) -> tuple[int, int | None]:
    """(after, limit): after 0 by default; no limit by default (the whole log)."""
    return _position("after", params.get("after"), 0) or 0, _position("limit", params.get("limit"), 1)


async def export_through(
    conn: asyncpg.Connection, event_filter: EventFilter, *, after: int, limit: int | None
) -> int:
    """The last position the export will hold: the last matching one (the `limit`-th, with a limit),
    or `after` when none match. Only matching positions: for a token limited to one organization it
    says nothing of the others' volume, as the global head would."""
    where, args = event_filter.where(after)
    if limit is None:
        query = f"SELECT max(id) FROM event_log WHERE {where}"
    else:
        query = f"SELECT max(id) FROM (SELECT id FROM event_log WHERE {where} ORDER BY id LIMIT {limit}) s"
    through = await conn.fetchval(query, *args)
    return after if through is None else int(through)


async def stream_through(
    conn: asyncpg.Connection, event_filter: EventFilter, *, after: int, through: int
) -> AsyncIterator[asyncpg.Record]:
    """The matching events in `(after, through]`, in log order, read in chunks in one transaction."""
    where, args = event_filter.where(after)
    args.append(through)
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        cursor = conn.cursor(
            f"SELECT {_COLUMNS} FROM event_log WHERE {where} AND id <= ${len(args)} ORDER BY id",
            *args,
            prefetch=_CHUNK,
        )
        async for row in cursor:
            yield row
