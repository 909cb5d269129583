"""Fill the event log with N seed-shaped events quickly (COPY, chain computed here), for rebuilds.

Four kinds in turn; calls and their recordings share call ids, reports repeat, so the projections
upsert as they would in production rather than only insert.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import asyncpg
import msgspec

from service.eventlog.chain import event_hash

_COLUMNS = (
    "id",
    "received_at",
    "kind",
    "event_type",
    "org_id",
    "external_id",
    "content_type",
    "body",
    "body_sha256",
    "prev_hash",
    "hash",
)
_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_encode = msgspec.json.encode


def _payload(n: int, org: str) -> tuple[str, str, str, dict[str, object]]:
    stamp = (_START + dt.timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    call_id = f"call_{n // 4 % 200_000}"
    match n % 4:
        case 0:
            body: dict[str, object] = {
                "event": "call.completed", "call_id": call_id, "phone_number": "+12125551234",
                "caller_name": "John Doe", "duration": n % 600, "status": "completed", "direction": "inbound",
                "recording_url": f"https://mightycall.com/recordings/{call_id}.mp3", "timestamp": stamp,
            }  # fmt: skip
            return "calls", "call.completed", call_id, body
        case 1:
            body = {
                "event": "sms.received", "sms_id": f"sms_{n}", "phone_number": "+12125551234",
                "direction": "inbound", "message": "Hi, I have a question about my order", "timestamp": stamp,
            }  # fmt: skip
            return "sms", "sms.received", f"sms_{n}", body
        case 2:
            body = {
                "event": "recording.available", "recording_id": f"rec_{call_id}", "call_id": call_id,
                "url": f"https://mightycall.com/recordings/{call_id}.mp3", "duration": n % 600,
                "format": "mp3", "size_bytes": n, "timestamp": stamp,
            }  # fmt: skip
            return "recordings", "recording.available", f"rec_{call_id}", body
        case _:
            report_id = f"rep_{n // 4 % 5000}"
            body = {
                "event": "report.daily", "report_id": report_id, "report_type": "daily", "date": "2024-01-20",
                "metrics": [
                    {"metric_type": "calls_total", "value": n % 100, "unit": "count"},
                    {"metric_type": "avg_call_duration", "value": n % 300, "unit": "seconds"},
                ],
                "timestamp": stamp,
            }  # fmt: skip
            return "reports", "report.daily", report_id, body


async def fill_log(url: str, org_id: uuid.UUID, events: int, *, chunk: int = 20_000) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            head = await conn.fetchrow("SELECT position, hash FROM event_log_head FOR UPDATE")
            position, chain = head["position"], bytes(head["hash"])
            received_at = dt.datetime.now(dt.UTC)
            for start in range(0, events, chunk):
                records = []
                for n in range(start, min(start + chunk, events)):
                    kind, event_type, external_id, payload = _payload(n, str(org_id))
                    body = _encode({**payload, "org_id": str(org_id)})
                    sha = hashlib.sha256(body).digest()
                    position += 1
                    prev, chain = (
                        chain,
                        event_hash(
                            chain,
                            event_id=position,
                            received_at=received_at,
                            kind=kind,
                            event_type=event_type,
                            org_id=org_id,
                            external_id=external_id,
                            content_type="application/json",
                            body_sha256=sha,
                            request_id=None,
                        ),
                    )
                    records.append(
                        (position, received_at, kind, event_type, org_id, external_id, "application/json",
                         body, sha, prev, chain)
                    )  # fmt: skip
                await conn.copy_records_to_table("event_log", records=records, columns=_COLUMNS)
            await conn.execute("UPDATE event_log_head SET position = $1, hash = $2", position, chain)
    finally:
        await conn.close()


async def settle(url: str) -> None:
    """Vacuum and checkpoint a freshly filled log: autovacuum would otherwise take it up during the first
    measurement, at that measurement's expense alone."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) event_log")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
