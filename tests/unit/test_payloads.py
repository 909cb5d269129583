"""Decoding and validating the four webhook payloads (pure: no database, no HTTP)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest

from service.core.errors import InvalidPayload
from service.core.payloads import (
    KINDS,
    CallPayload,
    Metric,
    RecordingPayload,
    ReportPayload,
    SmsPayload,
    decode,
)
from tests.support.payloads import DROP, SEED, body_for

ORG = uuid.UUID("6f1c1d9e-3c1a-4c2b-9d55-0f2f7c3b8a01")
INTEGRATION = uuid.UUID("0b7e4a52-91d3-4f0e-8c6a-5e2d1f9a7c44")
KIND_NAMES = sorted(KINDS)

EXPECTED_TYPE: dict[str, type] = {
    "calls": CallPayload,
    "sms": SmsPayload,
    "recordings": RecordingPayload,
    "reports": ReportPayload,
}
EXPECTED_EXTERNAL_ID = {
    "calls": "call_12345",
    "sms": "sms_12345",
    "recordings": "rec_12345",
    "reports": "rep_12345",
}
REQUIRED = {
    "calls": ["event", "call_id", "phone_number", "timestamp"],
    "sms": ["event", "sms_id", "phone_number", "direction", "timestamp"],
    "recordings": ["event", "recording_id", "call_id", "url", "timestamp"],
    "reports": ["event", "report_id", "report_type", "date", "metrics"],
}
IDENTIFIERS = {
    "calls": ["call_id", "phone_number"],
    "sms": ["sms_id", "phone_number"],
    "recordings": ["recording_id", "call_id"],
    "reports": ["report_id", "report_type"],
}
EVENT_OF = {kind: SEED[kind]["event"] for kind in KIND_NAMES}
METRIC_TYPES = [
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
SMS_TEXT = "Zebra-umbrella 7731: my card ends in 4242"
HUGE = "__HUGE_NUMBER__"


def invalid(kind: str, body: bytes) -> str:
    """The details of the InvalidPayload that decoding `body` raises."""
    with pytest.raises(InvalidPayload) as caught:
        decode(kind, body)
    assert caught.value.reason == "invalid_payload"
    assert caught.value.details
    return caught.value.details


def metric(**changes: Any) -> list[dict[str, Any]]:
    """The seed's metrics with the first one changed (DROP removes a field)."""
    first = {**SEED["reports"]["metrics"][0], **changes}
    return [{k: v for k, v in first.items() if v is not DROP}, *SEED["reports"]["metrics"][1:]]


def with_number(kind: str, literal: bytes, **changes: Any) -> bytes:
    """The seed body of `kind` with the placeholder HUGE replaced by a raw JSON number `literal`."""
    body = body_for(kind, ORG, **changes)
    assert body.count(f'"{HUGE}"'.encode()) == 1
    return body.replace(f'"{HUGE}"'.encode(), literal)


# --- the seed payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("context", ["org_id", "integration_id"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_seed_payload_decodes(kind: str, context: str) -> None:
    if context == "org_id":
        body = body_for(kind, ORG)
    else:
        body = body_for(kind, None, integration_id=str(INTEGRATION))

    payload = decode(kind, body)

    assert type(payload) is EXPECTED_TYPE[kind]
    assert payload.external_id == EXPECTED_EXTERNAL_ID[kind]
    assert payload.event == SEED[kind]["event"]
    if context == "org_id":
        assert (payload.org_id, payload.integration_id) == (ORG, None)
    else:
        assert (payload.org_id, payload.integration_id) == (None, INTEGRATION)


def test_seed_call_values() -> None:
    call = decode("calls", body_for("calls", ORG))
    assert isinstance(call, CallPayload)
    assert call.call_id == "call_12345"
    assert call.phone_number == "+12125551234"
    assert call.duration == 180
    assert call.direction == "inbound"
    assert call.timestamp == dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)


def test_seed_sms_values() -> None:
    sms = decode("sms", body_for("sms", ORG))
    assert isinstance(sms, SmsPayload)
    assert sms.direction == "inbound"
    assert sms.message == "Hi, I have a question about my order"
    assert sms.timestamp.utcoffset() == dt.timedelta(0)


def test_seed_recording_values() -> None:
    recording = decode("recordings", body_for("recordings", ORG))
    assert isinstance(recording, RecordingPayload)
    assert recording.call_id == "call_12345"
    assert recording.url == "https://mightycall.com/recordings/rec_12345.mp3"
    assert recording.size_bytes == 2890000
    assert recording.duration == 180


def test_seed_report_values() -> None:
    report = decode("reports", body_for("reports", ORG))
    assert isinstance(report, ReportPayload)
    assert report.report_type == "daily"
    assert report.date == dt.date(2024, 1, 20)
    assert report.metrics[0] == Metric(metric_type="calls_total", value=42.0, unit="count")
    assert [(m.metric_type, m.value) for m in report.metrics] == [
        (m["metric_type"], float(m["value"])) for m in SEED["reports"]["metrics"]
    ]


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        pytest.param("calls", {"timestamp": "2024-01-20T16:30:00+02:00"}, id="offset-not-utc"),
        pytest.param("calls", {"duration": 0}, id="zero-duration"),
        pytest.param("sms", {"direction": "outbound"}, id="outbound"),
        pytest.param("recordings", {"size_bytes": 0}, id="zero-size"),
        pytest.param("reports", {"metrics": metric(value=12.5)}, id="fractional-value"),
        pytest.param("reports", {"metrics": metric(value=-3)}, id="negative-value"),
        pytest.param("reports", {"metrics": metric(unit=DROP)}, id="metric-without-unit"),
    ],
)
def test_valid_variants_are_accepted(kind: str, changes: dict[str, Any]) -> None:
    payload = decode(kind, body_for(kind, ORG, **changes))
    assert type(payload) is EXPECTED_TYPE[kind]
    assert payload.external_id == EXPECTED_EXTERNAL_ID[kind]


def test_every_supported_metric_type_decodes() -> None:
    metrics = [{"metric_type": t, "value": n} for n, t in enumerate(METRIC_TYPES)]
    report = decode("reports", body_for("reports", ORG, metrics=metrics))
    assert isinstance(report, ReportPayload)
    assert [(m.metric_type, m.value) for m in report.metrics] == [
        (t, float(n)) for n, t in enumerate(METRIC_TYPES)
    ]


def test_offset_timestamp_keeps_the_instant() -> None:
    call = decode("calls", body_for("calls", ORG, timestamp="2024-01-20T16:30:00+02:00"))
    assert call.timestamp == dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC)


# --- required fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "field"), [(kind, field) for kind in KIND_NAMES for field in REQUIRED[kind]]
)
def test_missing_required_field_is_named(kind: str, field: str) -> None:
    details = invalid(kind, body_for(kind, ORG, **{field: DROP}))
    assert f"`{field}`" in details


@pytest.mark.parametrize("field", ["metric_type", "value"])
def test_metric_missing_field_is_named(field: str) -> None:
    details = invalid("reports", body_for("reports", ORG, metrics=metric(**{field: DROP})))
    assert f"`{field}`" in details
    assert "$.metrics[0]" in details


@pytest.mark.parametrize(
    ("kind", "field"), [(kind, field) for kind in KIND_NAMES for field in REQUIRED[kind]]
)
def test_required_field_null_is_refused(kind: str, field: str) -> None:
    details = invalid(kind, body_for(kind, ORG, **{field: None}))
    assert f"$.{field}" in details


# --- mistyped fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "changes", "path"),
    [
        pytest.param("calls", {"duration": "180"}, "$.duration", id="duration-string"),
        pytest.param("calls", {"duration": -1}, "$.duration", id="duration-negative"),
        pytest.param("calls", {"duration": 1.5}, "$.duration", id="duration-fraction"),
        pytest.param("recordings", {"duration": -1}, "$.duration", id="recording-duration-negative"),
        pytest.param("recordings", {"size_bytes": -1}, "$.size_bytes", id="size-negative"),
        pytest.param("recordings", {"size_bytes": "2890000"}, "$.size_bytes", id="size-string"),
        pytest.param("calls", {"direction": "sideways"}, "$.direction", id="call-direction"),
        pytest.param("sms", {"direction": "sideways"}, "$.direction", id="sms-direction"),
        pytest.param("sms", {"direction": "INBOUND"}, "$.direction", id="sms-direction-case"),
        pytest.param("calls", {"timestamp": "2024-01-20T14:30:00"}, "$.timestamp", id="call-ts-no-offset"),
        pytest.param("sms", {"timestamp": "2024-01-20T14:30:00"}, "$.timestamp", id="sms-ts-no-offset"),
        pytest.param(
            "recordings", {"timestamp": "2024-01-20T14:30:00"}, "$.timestamp", id="recording-ts-no-offset"
        ),
        pytest.param(
            "reports", {"timestamp": "2024-01-20T23:59:59"}, "$.timestamp", id="report-ts-no-offset"
        ),
        pytest.param("calls", {"timestamp": "yesterday"}, "$.timestamp", id="ts-yesterday"),
        pytest.param("sms", {"timestamp": "yesterday"}, "$.timestamp", id="sms-ts-yesterday"),
        pytest.param("calls", {"timestamp": 1705761000}, "$.timestamp", id="ts-epoch-number"),
        pytest.param("reports", {"date": "2024-13-45"}, "$.date", id="date-impossible"),
        pytest.param("reports", {"date": "20/01/2024"}, "$.date", id="date-not-iso"),
        pytest.param("reports", {"metrics": []}, "$.metrics", id="metrics-empty"),
        pytest.param("reports", {"metrics": {"calls_total": 42}}, "$.metrics", id="metrics-object"),
        pytest.param(
            "reports",
            {"metrics": metric(metric_type="calls_dropped")},
            "$.metrics[0].metric_type",
            id="metric-type-unknown",
        ),
        pytest.param("reports", {"metrics": metric(value="42")}, "$.metrics[0].value", id="value-string"),
        pytest.param("reports", {"metrics": metric(value=True)}, "$.metrics[0].value", id="value-bool"),
        pytest.param("reports", {"metrics": metric(value=None)}, "$.metrics[0].value", id="value-null"),
        pytest.param("calls", {"call_id": 12345}, "$.call_id", id="call-id-number"),
        pytest.param("calls", {"call_id": ""}, "$.call_id", id="call-id-empty"),
        pytest.param("calls", {"call_id": "c" * 256}, "$.call_id", id="call-id-too-long"),
        pytest.param("calls", {"org_id": "not-a-uuid"}, "$.org_id", id="org-id-not-uuid"),
        pytest.param("calls", {"event": ""}, "$.event", id="event-empty"),
    ],
)
def test_mistyped_field_is_named(kind: str, changes: dict[str, Any], path: str) -> None:
    details = invalid(kind, body_for(kind, ORG, **changes))
    assert f"`{path}`" in details


# --- the event must belong to the endpoint -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "event"),
    [(kind, EVENT_OF[other]) for kind in KIND_NAMES for other in KIND_NAMES if other != kind]
    + [(kind, KINDS[kind][1]) for kind in KIND_NAMES],
)
def test_event_of_another_kind_is_refused(kind: str, event: str) -> None:
    details = invalid(kind, body_for(kind, ORG, event=event))
    assert "$.event" in details
    assert KINDS[kind][1] in details


# --- unknown fields ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unknown_extra_fields_are_accepted(kind: str) -> None:
    extras = {
        "agent_id": "agent_7",
        "tags": ["vip", {"nested": [1, 2.5, None, True]}],
        "meta": {"source": "mightycall", "version": 3},
        "future_flag": False,
    }
    if kind == "reports":
        extras["metrics"] = metric(unit="count", breakdown={"by_hour": [1, 2, 3]})
    payload = decode(kind, body_for(kind, ORG, **extras))
    assert type(payload) is EXPECTED_TYPE[kind]
    assert payload.external_id == EXPECTED_EXTERNAL_ID[kind]
    assert payload.org_id == ORG


# --- NUL and huge numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in KIND_NAMES for field in IDENTIFIERS[kind]]
    + [("calls", "event"), ("calls", "caller_name"), ("recordings", "url"), ("sms", "status")],
)
@pytest.mark.parametrize("position", ["middle", "end"])
def test_nul_in_a_string_is_refused(kind: str, field: str, position: str) -> None:
    value = "abc\u0000def" if position == "middle" else "abc\u0000"
    details = invalid(kind, body_for(kind, ORG, **{field: value}))
    assert f"`$.{field}`" in details


def test_nul_in_a_metric_unit_is_refused() -> None:
    details = invalid("reports", body_for("reports", ORG, metrics=metric(unit="count\u0000")))
    assert "`$.metrics[0].unit`" in details


@pytest.mark.parametrize(
    ("kind", "literal", "path", "changes"),
    [
        pytest.param("calls", b"1e400", "$.duration", {"duration": HUGE}, id="duration-1e400"),
        pytest.param("calls", b"9" * 5000, "$.duration", {"duration": HUGE}, id="duration-5000-digits"),
        pytest.param("calls", str(2**31).encode(), "$.duration", {"duration": HUGE}, id="duration-2**31"),
        pytest.param("recordings", b"9" * 5000, "$.size_bytes", {"size_bytes": HUGE}, id="size-5000-digits"),
        pytest.param(
            "recordings", str(2**63).encode(), "$.size_bytes", {"size_bytes": HUGE}, id="size-2**63"
        ),
        pytest.param(
            "reports", b"1e400", "$.metrics[0].value", {"metrics": metric(value=HUGE)}, id="value-1e400"
        ),
        pytest.param(
            "reports", b"-1e400", "$.metrics[0].value", {"metrics": metric(value=HUGE)}, id="value--1e400"
        ),
        pytest.param(
            "reports",
            b"9" * 5000,
            "$.metrics[0].value",
            {"metrics": metric(value=HUGE)},
            id="value-5000-digits",
        ),
        pytest.param(
            "reports",
            b"-" + b"9" * 5000,
            "$.metrics[0].value",
            {"metrics": metric(value=HUGE)},
            id="value-negative-5000-digits",
        ),
    ],
)
def test_huge_numbers_are_refused(kind: str, literal: bytes, path: str, changes: dict[str, Any]) -> None:
    details = invalid(kind, with_number(kind, literal, **changes))
    assert f"`{path}`" in details
    assert len(details) <= 300


def test_largest_allowed_numbers_are_accepted() -> None:
    recording = decode(
        "recordings", with_number("recordings", str(2**63 - 1).encode(), size_bytes=HUGE, duration=2**31 - 1)
    )
    assert isinstance(recording, RecordingPayload)
    assert (recording.size_bytes, recording.duration) == (2**63 - 1, 2**31 - 1)
    report = decode("reports", with_number("reports", b"1e300", metrics=metric(value=HUGE)))
    assert isinstance(report, ReportPayload)
    assert report.metrics[0].value == 1e300


# --- bodies that are not a JSON object -----------------------------------------------------------

SEED_CALL_JSON = body_for("calls", ORG)
SEED_SMS_JSON = body_for("sms", ORG)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"   ", id="whitespace"),
        pytest.param(b"not json", id="text"),
        pytest.param(b"{", id="truncated-brace"),
        pytest.param(SEED_CALL_JSON[:-1], id="truncated-seed"),
        pytest.param(SEED_CALL_JSON + b"{}", id="trailing-garbage"),
        pytest.param(b"event=call.completed&call_id=call_12345", id="form-encoded"),
        pytest.param(b"\xff\xfe\x00\x00", id="invalid-utf8-bytes"),
        pytest.param(b"\xff" + SEED_CALL_JSON, id="invalid-utf8-prefix"),
        pytest.param(SEED_CALL_JSON.decode().encode("utf-16"), id="utf-16"),
        pytest.param(b"\xef\xbb\xbf" + SEED_CALL_JSON, id="utf-8-bom"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b"[" + SEED_CALL_JSON + b"]", id="array-of-seed"),
        pytest.param(b'"call.completed"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="bool"),
    ],
)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_body_that_is_not_a_json_object_is_refused(kind: str, body: bytes) -> None:
    details = invalid(kind, body)
    assert len(details) <= 300


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param("sms", SEED_SMS_JSON.replace(b"Hi, I have", b"caf\xe9 I have"), id="in-message"),
        pytest.param("calls", SEED_CALL_JSON.replace(b"call_12345", b"call_\xff"), id="in-identifier"),
        pytest.param("calls", SEED_CALL_JSON[:-1] + b',"extra":"\xff"}', id="in-unknown-field"),
        pytest.param("calls", SEED_CALL_JSON[:-1] + b',"\xc3":1}', id="in-unknown-key"),
    ],
)
def test_invalid_utf8_anywhere_is_refused_and_located(kind: str, body: bytes) -> None:
    # JSON is UTF-8: not even an unknown field may carry other bytes into the log.
    assert "not UTF-8 (byte" in invalid(kind, body)


@pytest.mark.parametrize("body", [b"[]", b"42", b'"x"', b"null"])
def test_non_object_json_says_an_object_was_expected(body: bytes) -> None:
    assert "object" in invalid("calls", body)


# --- what the details may say --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"direction": "sideways"}, id="bad-direction"),
        pytest.param({"timestamp": "yesterday"}, id="bad-timestamp"),
        pytest.param({"sms_id": DROP}, id="missing-sms-id"),
        pytest.param({"sms_id": ""}, id="empty-sms-id"),
        pytest.param({"event": "call.completed"}, id="wrong-event"),
        pytest.param({"message": SMS_TEXT + "\u0000"}, id="nul-in-message"),
        pytest.param({"message": ["not", "text"]}, id="message-not-a-string"),
        pytest.param({"sender": SMS_TEXT + "\u0000"}, id="nul-in-sender"),
        pytest.param({"org_id": "nope"}, id="bad-org-id"),
    ],
)
def test_details_never_contain_the_sms_message(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload) as caught:
        decode("sms", body_for("sms", ORG, **{"message": SMS_TEXT, **changes}))
    assert SMS_TEXT not in caught.value.details
    assert "Zebra" not in caught.value.details
    assert "4242" not in str(caught.value)


def test_details_of_malformed_json_never_contain_the_sms_message() -> None:
    body = body_for("sms", ORG, message=SMS_TEXT)
    cut = body.index(SMS_TEXT.encode()) + len(SMS_TEXT) // 2
    for broken in (body[:cut], body.replace(b'"message"', b"message"), body.replace(b"4242", b"42\x0142")):
        with pytest.raises(InvalidPayload) as caught:
            decode("sms", broken)
        assert SMS_TEXT[:12] not in caught.value.details
        assert "4242" not in caught.value.details


@pytest.mark.parametrize(
    ("kind", "changes", "path"),
    [
        pytest.param("calls", {"direction": "x" * 10_000}, "$.direction", id="call-direction"),
        pytest.param("sms", {"direction": "é" * 50_000}, "$.direction", id="sms-direction-multibyte"),
        pytest.param(
            "reports",
            {"metrics": metric(metric_type="m" * 100_000)},
            "$.metrics[0].metric_type",
            id="metric-type",
        ),
    ],
)
def test_long_enum_values_give_bounded_details_that_still_name_the_field(
    kind: str, changes: dict[str, Any], path: str
) -> None:
    details = invalid(kind, body_for(kind, ORG, **changes))
    assert len(details) <= 300
    assert details.endswith(f"- at `{path}`")


def test_details_are_bounded_when_every_field_is_wrong() -> None:
    body = msgspec.json.encode({"event": "x" * 5000, "call_id": "y" * 5000, "timestamp": "z" * 5000})
    details = invalid("calls", body)
    assert len(details) <= 300
    assert "x" * 300 not in details
