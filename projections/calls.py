"""`calls`: one row per call, reflecting the call event with the latest payload timestamp."""

from __future__ import annotations

from projections.model import Event, Key, Projection, Row, Table, id_of, is_older
from service.core.payloads import CallPayload
from service.core.phones import PhoneBook

__all__ = ["PROJECTION"]

TABLE = Table(
    name="calls",
    key=("org_id", "call_id"),
    columns={
        "id": "uuid",
        "org_id": "uuid",
        "call_id": "text",
        "phone_number": "text",
        "phone_number_id": "uuid",
        "caller_name": "text",
        "caller_phone": "text",
        "duration": "integer",
        "status": "text",
        "direction": "text",
        "recording_url": "text",
        "call_date": "timestamptz",
        "event_id": "bigint",
    },
)


def _payload(event: Event) -> CallPayload:
    assert isinstance(event.payload, CallPayload)
    return event.payload


def keys(event: Event) -> list[Key]:
    return [(event.org_id, _payload(event).call_id)]


def apply(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    call = _payload(event)
    if row is not None and is_older(call.timestamp, event.id, row["call_date"], row["event_id"]):
        return None
    return {
        "id": id_of(row, TABLE.name, key),
        "org_id": event.org_id,
        "call_id": call.call_id,
        "phone_number": call.phone_number,
        "phone_number_id": phones.id_for(event.org_id, call.phone_number),
        "caller_name": call.caller_name,
        "caller_phone": call.caller_phone,
        "duration": call.duration,
        "status": call.status,
        "direction": call.direction,
        "recording_url": call.recording_url,
        "call_date": call.timestamp,
        "event_id": event.id,
    }


PROJECTION = Projection(
    name="calls",
    version=2,  # 2: ids from an unambiguous encoding of the key (model.row_id)
    kinds=frozenset({"calls"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [_payload(event).phone_number],
)
