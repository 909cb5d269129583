"""The event log's SQL objects, one per file, each file a version (`append_events_v1.sql`), loaded by
the migration that creates it, in the way message-db keeps its functions.

The NOTIFY channel is named here once: the SQL files say `:channel` and the live projector listens
on the same constant.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHANNEL", "load_sql"]

CHANNEL = "mightycall_event_log"
"""NOTIFY channel: each append transaction signals it, delivered when the transaction commits, so the
live projector wakes without polling."""

_HERE = Path(__file__).resolve().parent


def load_sql(name: str) -> str:
    """The SQL of `name` (a file beside this one), with `:channel` as a quoted literal."""
    return (_HERE / name).read_text().replace(":channel", "'" + CHANNEL.replace("'", "''") + "'")
