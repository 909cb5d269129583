"""`mightycall_recordings`: one row per recording of a call, from whichever webhook came first.

A call webhook with a `recording_url` announces a recording; a recording webhook for the same call
and URL describes it. Both land on the row keyed (org_id, call_id, url), in either order, so a
recording is linked to its call whichever arrives first and is never counted twice.

The row keeps two sources side by side: what the latest call webhook said (call_*) and what the
latest recording webhook said (recording_*), each "latest" by payload timestamp, then log position.
The visible `phone_number` and `duration` are the recording webhook's where it gave them, else the
call's: it describes the recording itself. So the values never depend on the order of arrival; only
`created_at` (the timestamp of the event that created the row) and `event_id` record history.
"""

from __future__ import annotations

from typing import Any

from projections.model import Event, Key, Projection, Row, Table, id_of, is_older
from service.core.payloads import CallPayload, RecordingPayload
from service.core.phones import PhoneBook

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
        "call_timestamp": "timestamptz",
        "call_event_id": "bigint",
        "call_phone_number": "text",
        "call_duration": "integer",
        "recording_timestamp": "timestamptz",
        "recording_event_id": "bigint",
        "recording_phone_number": "text",
        "recording_duration": "integer",
    },
)

_CALL_SOURCE = ("call_timestamp", "call_event_id", "call_phone_number", "call_duration")
_RECORDING_SOURCE = (
    "recording_timestamp",
    "recording_event_id",
    "recording_phone_number",
    "recording_duration",
    "recording_id",
    "format",
    "size_bytes",
)


def keys(event: Event) -> list[Key]:
    payload = event.payload
    if isinstance(payload, RecordingPayload):
        return [(event.org_id, payload.call_id, payload.url)]
    if isinstance(payload, CallPayload) and payload.recording_url:
        return [(event.org_id, payload.call_id, payload.recording_url)]
    return []


def _source(event: Event) -> tuple[str, dict[str, Any]]:
    """Which source the event is ("call" or "recording"), and the columns of that source it sets."""
    payload = event.payload
    if isinstance(payload, RecordingPayload):
        return "recording", {
            "recording_timestamp": payload.timestamp,
            "recording_event_id": event.id,
            "recording_phone_number": payload.phone_number,
            "recording_duration": payload.duration,
            "recording_id": payload.recording_id,
            "format": payload.format,
            "size_bytes": payload.size_bytes,
        }
    assert isinstance(payload, CallPayload)
    return "call", {
        "call_timestamp": payload.timestamp,
        "call_event_id": event.id,
        "call_phone_number": payload.phone_number,
        "call_duration": payload.duration,
    }


def apply(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    name, source = _source(event)
    timestamp, event_id = f"{name}_timestamp", f"{name}_event_id"
    # Each source moves forward on its own: an older call never replaces a newer call's values.
    if (
        row is not None
        and row[event_id] is not None
        and is_older(source[timestamp], event.id, row[timestamp], row[event_id])
    ):
        return None
    org_id, call_id, url = key
    row_id = id_of(row, TABLE.name, key)
    if row is None:
        empty = dict.fromkeys((*_CALL_SOURCE, *_RECORDING_SOURCE))
        row = {**empty, "created_at": source[timestamp]}
    merged = {**row, **source}
    phone_number = merged["recording_phone_number"] or merged["call_phone_number"]
    duration = (
        merged["recording_duration"] if merged["recording_duration"] is not None else merged["call_duration"]
    )
    return {
        "id": row_id,
        "org_id": org_id,
        "call_id": call_id,
        "url": url,
        "phone_number": phone_number,
        "phone_number_id": phones.id_for(org_id, phone_number),
        "duration": duration,
        "created_at": row["created_at"],
        "event_id": event.id,
        **{name: merged[name] for name in (*_CALL_SOURCE, *_RECORDING_SOURCE)},
    }


PROJECTION = Projection(
    name="recordings",
    version=2,  # 2: ids from an unambiguous encoding of the key (model.row_id)
    kinds=frozenset({"calls", "recordings"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [getattr(event.payload, "phone_number", None)],
    # What the row shows is one of these two (apply), whichever webhook came last.
    row_phone_numbers=lambda row: [row["call_phone_number"], row["recording_phone_number"]],
)
