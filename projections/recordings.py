"""`mightycall_recordings`: one row per recording of a call, from whichever webhook came first.

A call webhook with a `recording_url` announces a recording; a recording webhook for the same call
and URL describes it. Both land on the row keyed (org_id, call_id, url), in either order, so a
recording is linked to its call whichever arrives first and is never counted twice.

Which values the row holds: those of the highest-ranked event, where a recording webhook outranks a
call webhook (it describes the recording itself) and, within a rank, the later payload timestamp and
then the later log position wins. A field the winner leaves empty keeps (or takes) another event's value.
"""

from __future__ import annotations

from typing import Any

from projections.model import Event, Key, Projection, Row, Table, row_id
from projections.phones import PhoneBook
from service.payloads import CallPayload, RecordingPayload

__all__ = ["PROJECTION"]

TABLE = Table(
    name="mightycall_recordings",
    key=("org_id", "call_id", "url"),
    columns={
        "id": "uuid",
        "org_id": "uuid",
        "recording_id": "text",
        "call_id": "text",
        "phone_number": "text",
        "phone_number_id": "uuid",
        "url": "text",
        "duration": "integer",
        "format": "text",
        "size_bytes": "bigint",
        "created_at": "timestamptz",
        "event_id": "bigint",
        "source_rank": "smallint",
        "source_timestamp": "timestamptz",
        "source_event_id": "bigint",
    },
)

_CALL_RANK, _RECORDING_RANK = 0, 1
_VALUES = ("recording_id", "phone_number", "duration", "format", "size_bytes")


def keys(event: Event) -> list[Key]:
    payload = event.payload
    if isinstance(payload, RecordingPayload):
        return [(event.org_id, payload.call_id, payload.url)]
    if isinstance(payload, CallPayload) and payload.recording_url:
        return [(event.org_id, payload.call_id, payload.recording_url)]
    return []


def _described(event: Event) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The event's rank order and the values it gives the recording."""
    payload = event.payload
    if isinstance(payload, RecordingPayload):
        order = (_RECORDING_RANK, payload.timestamp, event.id)
        values = {
            "recording_id": payload.recording_id,
            "phone_number": payload.phone_number,
            "duration": payload.duration,
            "format": payload.format,
            "size_bytes": payload.size_bytes,
        }
        return order, values
    assert isinstance(payload, CallPayload)
    order = (_CALL_RANK, payload.timestamp, event.id)
    # The call's duration is the recording's best estimate until the recording webhook says otherwise.
    values = {
        "recording_id": None,
        "phone_number": payload.phone_number,
        "duration": payload.duration,
        "format": None,
        "size_bytes": None,
    }
    return order, values


def apply(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    order, values = _described(event)
    if row is None:
        merged, source, created_at = values, order, order[1]
    else:
        current = (row["source_rank"], row["source_timestamp"], row["source_event_id"])
        if order > current:
            merged = {name: values[name] if values[name] is not None else row[name] for name in _VALUES}
            source = order
        else:
            merged = {name: row[name] if row[name] is not None else values[name] for name in _VALUES}
            source = current
        if source == current and all(merged[name] == row[name] for name in _VALUES):
            return None
        created_at = row["created_at"]
    org_id, call_id, url = key
    return {
        "id": row_id(TABLE.name, *key),
        "org_id": org_id,
        "call_id": call_id,
        "url": url,
        **merged,
        "phone_number_id": phones.id_for(org_id, merged["phone_number"]),
        "created_at": created_at,
        "event_id": event.id,
        "source_rank": source[0],
        "source_timestamp": source[1],
        "source_event_id": source[2],
    }


PROJECTION = Projection(
    name="recordings",
    version=1,
    kinds=frozenset({"calls", "recordings"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [getattr(event.payload, "phone_number", None)],
)
