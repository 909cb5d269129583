"""The four webhook payloads as msgspec Structs, with one decoder per kind built at import.

Only what the service relies on is declared; unknown fields are accepted and kept in the raw log.
Evolve these by adding fields with defaults only, so that every event already in the log still decodes.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from service.errors import InvalidPayload

__all__ = [
    "KINDS",
    "CallPayload",
    "Metric",
    "Payload",
    "RecordingPayload",
    "ReportPayload",
    "SmsPayload",
    "decode",
]

# PostgreSQL text cannot hold NUL, and identifiers this long are not identifiers.
_NO_NUL = r"\A[^\x00]*\Z"
Identifier = Annotated[str, Meta(min_length=1, max_length=255, pattern=_NO_NUL)]
Text = Annotated[str, Meta(pattern=_NO_NUL)]
Timestamp = Annotated[dt.datetime, Meta(tz=True)]  # RFC 3339: the offset is not optional
Seconds = Annotated[int, Meta(ge=0, le=2**31 - 1)]
ByteCount = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Direction = Literal["inbound", "outbound"]
MetricType = Literal[
    "calls_total",
    "calls_completed",
    "calls_missed",
    "calls_transferred",
    "calls_abandoned",
    "avg_call_duration",
    "sms_sent",
    "sms_received",
    "queue_wait_time",
    "agent_active_time",
]


class _Envelope(Struct, frozen=True, kw_only=True):
    event: Annotated[str, Meta(min_length=1, max_length=100, pattern=_NO_NUL)]
    org_id: UUID | None = None
    integration_id: UUID | None = None


class CallPayload(_Envelope, frozen=True, kw_only=True):
    call_id: Identifier
    phone_number: Identifier
    timestamp: Timestamp
    caller_name: Text | None = None
    caller_phone: Text | None = None
    duration: Seconds | None = None
    status: Text | None = None
    direction: Direction | None = None
    recording_url: Text | None = None

    @property
    def external_id(self) -> str:
        return self.call_id


class SmsPayload(_Envelope, frozen=True, kw_only=True):
    sms_id: Identifier
    phone_number: Identifier
    direction: Direction
    timestamp: Timestamp
    sender: Text | None = None
    recipient: Text | None = None
    message: Text | None = None
    status: Text | None = None

    @property
    def external_id(self) -> str:
        return self.sms_id


class RecordingPayload(_Envelope, frozen=True, kw_only=True):
    recording_id: Identifier
    call_id: Identifier
    url: Text
    timestamp: Timestamp
    phone_number: Identifier | None = None
    duration: Seconds | None = None
    format: Text | None = None
    size_bytes: ByteCount | None = None

    @property
    def external_id(self) -> str:
        return self.recording_id


class Metric(Struct, frozen=True, kw_only=True):
    metric_type: MetricType
    # float, not int | float: any JSON number decodes to a finite float or is refused as out of range,
    # so a thousand-digit integer cannot reach the database.
    value: float
    unit: Text | None = None


class ReportPayload(_Envelope, frozen=True, kw_only=True):
    report_id: Identifier
    report_type: Identifier
    date: dt.date
    metrics: Annotated[list[Metric], Meta(min_length=1, max_length=1000)]
    phone_number: Identifier | None = None
    timestamp: Timestamp | None = None

    @property
    def external_id(self) -> str:
        return self.report_id


Payload = CallPayload | SmsPayload | RecordingPayload | ReportPayload

# kind (the endpoint) -> (payload type, the prefix its `event` must carry)
KINDS: dict[str, tuple[type[Payload], str]] = {
    "calls": (CallPayload, "call."),
    "sms": (SmsPayload, "sms."),
    "recordings": (RecordingPayload, "recording."),
    "reports": (ReportPayload, "report."),
}

_DECODERS = {kind: msgspec.json.Decoder(payload_type) for kind, (payload_type, _) in KINDS.items()}


def decode(kind: str, body: bytes) -> Payload:
    """Decode and validate `body` for the endpoint `kind`, or raise InvalidPayload naming the field.

    msgspec's messages name the path and the expected type; the only values they quote are those of
    enumerations (`direction`, `metric_type`), never a free text such as an SMS body.
    """
    try:
        # JSON is UTF-8 (RFC 8259). msgspec checks only the strings it decodes into declared fields, and
        # raises UnicodeDecodeError for those: check the whole body, so unknown fields cannot carry
        # invalid bytes into the log either.
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        payload: Payload = _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(_bounded(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise InvalidPayload(_bounded(f"body is not valid JSON: {exc}")) from None
    prefix = KINDS[kind][1]
    if not payload.event.startswith(prefix) or payload.event == prefix:
        raise InvalidPayload(f"`event` must be a {prefix}… event on this endpoint - at `$.event`")
    return payload


_MAX_DETAILS = 300


def _bounded(details: str) -> str:
    """An enumeration's message quotes the value it refused, which the sender may have made huge: cut
    the middle, keep the path to the field at the end."""
    if len(details) <= _MAX_DETAILS:
        return details
    message, at, path = details.rpartition(" - at ")
    if not at or len(at + path) > _MAX_DETAILS // 2:
        message, at, path = details, "", ""
    return message[: _MAX_DETAILS - len(at + path) - 1] + "…" + at + path
