"""The four webhook payloads as msgspec Structs, with one decoder per kind built at import.

Only what the service relies on is declared; unknown fields are accepted and kept in the raw log.
Evolve these by adding fields with defaults only, so that every event already in the log still decodes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta, Struct

from service.core.errors import InvalidPayload

__all__ = [
    "KINDS",
    "MAX_DEPTH",
    "CallPayload",
    "Metric",
    "Payload",
    "RecordingPayload",
    "ReportPayload",
    "SmsPayload",
    "decode",
    "decode_delivery",
]

# Identifiers this long are not identifiers. PostgreSQL text cannot hold NUL either: that is checked
# once per body (_nul_path), not by a pattern on every string, which was most of the decoding time.
Identifier = Annotated[str, Meta(min_length=1, max_length=255)]
Text = str
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


class _PayloadBase(Struct, frozen=True, kw_only=True):
    """What every payload carries: its event and its organization. (The event log's envelope, what a
    hash covers, is service/eventlog/chain.py's Envelope.)"""

    event: Annotated[str, Meta(min_length=1, max_length=100)]
    org_id: UUID | None = None
    integration_id: UUID | None = None


class CallPayload(_PayloadBase, frozen=True, kw_only=True):
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


class SmsPayload(_PayloadBase, frozen=True, kw_only=True):
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


class RecordingPayload(_PayloadBase, frozen=True, kw_only=True):
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


class ReportPayload(_PayloadBase, frozen=True, kw_only=True):
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
    except RecursionError:
        # msgspec's nesting limit is Python's recursion limit, which the caller's own stack depth eats into.
        raise InvalidPayload(f"body nests arrays and objects more than {MAX_DEPTH} deep") from None
    # In JSON a NUL can only be written as the escape \u0000: without one, no string holds a NUL.
    if b"\\u0000" in body and (path := _nul_path(payload, "$")) is not None:
        raise InvalidPayload(f"text must not contain NUL (\\u0000) - at `{path}`")
    prefix = KINDS[kind][1]
    if not payload.event.startswith(prefix) or payload.event == prefix:
        raise InvalidPayload(f"`event` must be a {prefix}… event on this endpoint - at `$.event`")
    return payload


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first declared string holding a NUL, if any (unknown fields are not looked at:
    the log's older events may hold one there, and must still decode)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, list):
        return next((p for i, item in enumerate(value) if (p := _nul_path(item, f"{path}[{i}]"))), None)
    if isinstance(value, Struct):
        fields = value.__struct_fields__
        return next((p for name in fields if (p := _nul_path(getattr(value, name), f"{path}.{name}"))), None)
    return None


# What a new delivery is held to beyond its type (decode_delivery). Not part of decode: the events already
# in the log were accepted without these rules, and every one of them must still decode.
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted: MightyCall's payloads nest 3 deep. Every reader of
the log (the audit API, the projector, trace) decodes recursively, each from a different stack depth."""
# btree index entries hold at most 2704 bytes: mightycall_recordings is unique on (org_id, call_id, url).
_RECORDING_KEY_BYTES = 2048
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# \u0000 outside an escaped backslash: PostgreSQL's json and jsonb refuse it (`body::jsonb` in trace).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Numbers PostgreSQL's numeric (so jsonb) can hold: 1000 digits and an exponent below 1000 are far inside.
_LONG_NUMBER = re.compile(rb"[0-9.eE+-]{1001,}")
# Two patterns with a literal first byte: a search for either is several times faster than for [eE].
_BIG_EXPONENTS = (re.compile(rb"e[+-]?0*[1-9][0-9]{3}"), re.compile(rb"E[+-]?0*[1-9][0-9]{3}"))
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def decode_delivery(kind: str, body: bytes) -> Payload:
    """`decode`, and what only a new delivery is held to: every event accepted must stay readable by
    the projections, the audit API and PostgreSQL's own JSON, or it would stop them for good (the log
    cannot be changed). Raises InvalidPayload."""
    payload = decode(kind, body)
    _check_structure(body)
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        raise InvalidPayload("body holds the escape \\u0000, which PostgreSQL's JSON cannot hold")
    if payload.timestamp is not None:
        try:
            payload.timestamp.astimezone(dt.UTC)
        except OverflowError:
            raise InvalidPayload("`timestamp` is out of range in UTC - at `$.timestamp`") from None
    if isinstance(payload, RecordingPayload):
        _check_recording_key("url", payload.url, payload.call_id)
    elif isinstance(payload, CallPayload) and payload.recording_url is not None:
        _check_recording_key("recording_url", payload.recording_url, payload.call_id)
    return payload


def _check_recording_key(field: str, url: str, call_id: str) -> None:
    if len(url.encode()) + len(call_id.encode()) > _RECORDING_KEY_BYTES:
        raise InvalidPayload(
            f"`{field}` and `call_id` together are over {_RECORDING_KEY_BYTES} bytes - at `$.{field}`"
        )


def _check_structure(body: bytes) -> None:
    """Nesting and numbers, looked for outside strings; `body` is valid JSON."""
    may_nest = body.count(b"[") + body.count(b"{") > MAX_DEPTH
    if not (may_nest or _odd_number(body)):
        return  # the usual case: nothing that could be either, even inside a string
    # Strings removed, what remains is structure, numbers and literals.
    structure = _STRING.sub(b'""', body)
    if may_nest and _too_deep(structure):
        raise InvalidPayload(f"body nests arrays and objects more than {MAX_DEPTH} deep")
    if _odd_number(structure):
        raise InvalidPayload("body holds a number with over 1000 digits or an exponent of 1000 or more")


def _odd_number(text: bytes) -> bool:
    return bool(_LONG_NUMBER.search(text) or any(pattern.search(text) for pattern in _BIG_EXPONENTS))


def _too_deep(structure: bytes) -> bool:
    brackets = structure.translate(_ONE_BRACKET, _NOT_BRACKETS)
    # Each pass removes the innermost level; valid JSON nests its brackets properly.
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


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
