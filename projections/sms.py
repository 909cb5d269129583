"""`mightycall_sms_messages`: one row per message, reflecting its latest event by payload timestamp."""

from __future__ import annotations

from projections.model import Event, Key, Projection, Row, Table, id_of, is_older
from service.core.payloads import SmsPayload
from service.core.phones import PhoneBook

__all__ = ["PROJECTION"]

TABLE = Table(
    name="mightycall_sms_messages",
    key=("org_id", "sms_id"),
    columns={
        "id": "uuid",
        "org_id": "uuid",
        "sms_id": "text",
        "phone_number": "text",
        "phone_number_id": "uuid",
        "direction": "text",
        "sender": "text",
        "recipient": "text",
        "message": "text",
        "status": "text",
        "message_date": "timestamptz",
        "event_id": "bigint",
    },
)


def _payload(event: Event) -> SmsPayload:
    assert isinstance(event.payload, SmsPayload)
    return event.payload


def keys(event: Event) -> list[Key]:
    return [(event.org_id, _payload(event).sms_id)]


def apply(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    sms = _payload(event)
    if row is not None and is_older(sms.timestamp, event.id, row["message_date"], row["event_id"]):
        return None
    return {
        "id": id_of(row, TABLE.name, key),
        "org_id": event.org_id,
        "sms_id": sms.sms_id,
        "phone_number": sms.phone_number,
        "phone_number_id": phones.id_for(event.org_id, sms.phone_number),
        "direction": sms.direction,
        "sender": sms.sender,
        "recipient": sms.recipient,
        "message": sms.message,
        "status": sms.status,
        "message_date": sms.timestamp,
        "event_id": event.id,
    }


PROJECTION = Projection(
    name="sms",
    version=2,  # 2: ids from an unambiguous encoding of the key (model.row_id)
    kinds=frozenset({"sms"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [_payload(event).phone_number],
)
