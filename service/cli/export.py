"""`events export [--after N] [--limit N]`: the export of service/audit/export.py, to standard output."""

from __future__ import annotations

import sys

import asyncpg
import msgspec

from service.audit.export import export_params, export_through, stream_through
from service.audit.queries import EventFilter, export_line

__all__ = ["export_command"]

_encode = msgspec.json.Encoder().encode


async def export_command(
    conn: asyncpg.Connection, event_filter: EventFilter, *, after: int, limit: int | None
) -> None:
    # The same bounds as the API's parameters, with the same messages.
    after, limit = export_params({"after": str(after), "limit": "" if limit is None else str(limit)})
    through = await export_through(conn, event_filter, after=after, limit=limit)
    # Standard error, so that standard output stays the NDJSON alone: resume with --after <last id>.
    print(f"export: events after {after} through {through}", file=sys.stderr, flush=True)
    out = sys.stdout.buffer
    async for row in stream_through(conn, event_filter, after=after, through=through):
        out.write(_encode(export_line(row)) + b"\n")
    out.flush()
