"""The hash chain over the event log: each event's hash covers the previous event's hash.

hash(n) = sha256(hash(n-1) || envelope(n)), hash(0) = 32 zero bytes, where envelope(n) is the JSON array

    [id, received_at in microseconds since the Unix epoch, kind, event_type, org_id, external_id,
     content_type or null, body_sha256 in hex, request_id, admitted_from]

encoded by msgspec (compact, no whitespace). The array ends at its last element that is not null, of
the two optional ones: request_id (null or absent for events logged before request ids existed) and
admitted_from (the id of the refused delivery an event was admitted from by `rejected admit`; absent
for a live webhook). So every event keeps the envelope it was chained with when a field is added.
The chain covers the body's sha256, not the body, so old bodies can later be archived without breaking
verification (DESIGN-NOTES §4).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, Unpack
from uuid import UUID

import msgspec

__all__ = [
    "GENESIS_HASH",
    "Envelope",
    "envelope_head",
    "envelope_tail",
    "epoch_micros",
    "event_hash",
    "row_hash",
]

GENESIS_HASH = bytes(32)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_encode = msgspec.json.Encoder().encode


def epoch_micros(moment: dt.datetime) -> int:
    # An integer, not an ISO string: it survives the round trip through timestamptz in any time zone.
    return (moment - _EPOCH) // _MICROSECOND


class Envelope(TypedDict):
    """What an event's hash covers besides its position and the previous hash."""

    received_at: dt.datetime
    kind: str
    event_type: str
    org_id: UUID
    external_id: str
    content_type: str | None
    body_sha256: bytes
    request_id: str | None
    admitted_from: NotRequired[int | None]


def event_hash(prev_hash: bytes, *, event_id: int, **envelope: Unpack[Envelope]) -> bytes:
    return hashlib.sha256(prev_hash + envelope_head(event_id) + envelope_tail(**envelope)).digest()


def envelope_head(event_id: int) -> bytes:
    """The start of the envelope, up to and including the comma after the id."""
    return b"[%d," % event_id


def envelope_tail(**envelope: Unpack[Envelope]) -> bytes:
    """The envelope after `[id,`: all of it but the position, so it can be encoded before the position
    is known. The database's append_events() puts the head in front (alembic 0006)."""
    fields: list[object] = [
        epoch_micros(envelope["received_at"]),
        envelope["kind"],
        envelope["event_type"],
        str(envelope["org_id"]),
        envelope["external_id"],
        envelope["content_type"],
        envelope["body_sha256"].hex(),
    ]
    admitted_from = envelope.get("admitted_from")
    if envelope["request_id"] is not None or admitted_from is not None:
        fields.append(envelope["request_id"])
    if admitted_from is not None:
        fields.append(admitted_from)
    return _encode(fields)[1:]


def row_hash(prev_hash: bytes, row: Mapping[str, Any]) -> bytes:
    """event_hash of a row of `event_log` (or anything with its column names)."""
    return event_hash(
        prev_hash,
        event_id=row["id"],
        received_at=row["received_at"],
        kind=row["kind"],
        event_type=row["event_type"],
        org_id=row["org_id"],
        external_id=row["external_id"],
        content_type=row["content_type"],
        body_sha256=bytes(row["body_sha256"]),
        request_id=row["request_id"],
        admitted_from=row.get("admitted_from"),
    )
