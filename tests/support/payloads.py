"""The seed's example payloads, as MightyCall would send them, for a given organization."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["DROP", "PATHS", "SEED", "body_for"]

DROP = object()
"""Pass as a change to leave a field out."""

PATHS = {
    "calls": "/functions/v1/mightycall-calls-webhook",
    "sms": "/functions/v1/mightycall-sms-webhook",
    "recordings": "/functions/v1/mightycall-recordings-webhook",
    "reports": "/functions/v1/mightycall-reports-webhook",
}

SEED: dict[str, dict[str, Any]] = {
    "calls": {
        "event": "call.completed",
        "call_id": "call_12345",
        "phone_number": "+12125551234",
        "caller_name": "John Doe",
        "caller_phone": "+14155555678",
        "duration": 180,
        "status": "completed",
        "direction": "inbound",
        "recording_url": "https://mightycall.com/recordings/rec_12345.mp3",
        "timestamp": "2024-01-20T14:30:00Z",
    },
    "sms": {
        "event": "sms.received",
        "sms_id": "sms_12345",
        "phone_number": "+12125551234",
        "direction": "inbound",
        "sender": "+14155555678",
        "recipient": "+12125551234",
        "message": "Hi, I have a question about my order",
        "status": "received",
        "timestamp": "2024-01-20T14:30:00Z",
    },
    "recordings": {
        "event": "recording.available",
        "recording_id": "rec_12345",
        "call_id": "call_12345",
        "phone_number": "+12125551234",
        "url": "https://mightycall.com/recordings/rec_12345.mp3",
        "duration": 180,
        "format": "mp3",
        "size_bytes": 2890000,
        "timestamp": "2024-01-20T14:30:00Z",
    },
    "reports": {
        "event": "report.daily",
        "report_id": "rep_12345",
        "report_type": "daily",
        "date": "2024-01-20",
        "phone_number": "+12125551234",
        "metrics": [
            {"metric_type": "calls_total", "value": 42, "unit": "count"},
            {"metric_type": "calls_completed", "value": 40, "unit": "count"},
            {"metric_type": "calls_missed", "value": 2, "unit": "count"},
            {"metric_type": "avg_call_duration", "value": 240, "unit": "seconds"},
            {"metric_type": "sms_sent", "value": 15, "unit": "count"},
            {"metric_type": "sms_received", "value": 18, "unit": "count"},
        ],
        "timestamp": "2024-01-20T23:59:59Z",
    },
}


def body_for(kind: str, org_id: object, /, **changes: Any) -> bytes:
    """The seed payload of `kind` for `org_id` (None: no org_id), with `changes` applied."""
    payload = dict(SEED[kind])
    if org_id is not None:
        payload["org_id"] = str(org_id)
    payload.update(changes)
    return msgspec.json.encode({k: v for k, v in payload.items() if v is not DROP})
