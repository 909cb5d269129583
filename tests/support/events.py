"""Building log events from the seed payloads, and folding them through a projection (pure: no database)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from projections.model import Event, Key, Projection, Row
from service.core.payloads import decode
from service.core.phones import PhoneBook
from tests.support.payloads import body_for

__all__ = ["BASE", "NO_PHONES", "ORG", "OTHER_ORG", "event", "fold", "moment"]

ORG = uuid.UUID("3d0a6c1e-8f2b-4b7a-9e51-2c6d4f8a1b03")
OTHER_ORG = uuid.UUID("a5e9b2c4-1d7f-4e36-8b0a-9f3c5d7e2a16")
BASE = dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)
NO_PHONES = PhoneBook(default_region="US")


def moment(seconds: int) -> dt.datetime:
    """The payload timestamp `seconds` after BASE, as the decoded payload holds it."""
    return BASE + dt.timedelta(seconds=seconds)


def event(
    kind: str, event_id: int, /, org_id: uuid.UUID = ORG, at: int | None = None, **changes: Any
) -> Event:
    """The log event at position `event_id` carrying the seed payload of `kind`, with `changes` applied
    and, when `at` is given, the payload timestamp `moment(at)`."""
    if at is not None:
        changes["timestamp"] = moment(at).isoformat()
    return Event(
        id=event_id, kind=kind, org_id=org_id, payload=decode(kind, body_for(kind, org_id, **changes))
    )


def fold(
    projection: Projection, events: Iterable[Event], key: Key, phones: PhoneBook = NO_PHONES
) -> Row | None:
    """Apply `events` in the given order starting from no row, keeping each result that is not None."""
    row: Row | None = None
    for each in events:
        applied = projection.apply(None if row is None else dict(row), each, key, phones)
        if applied is not None:
            row = applied
    return row
