"""Deliveries built directly, for tests of the log below the HTTP layer."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from service.eventlog.append import Delivery

__all__ = ["delivery"]


def delivery(org_id: uuid.UUID, n: int, kind: str = "calls", request_id: str | None = None) -> Delivery:
    body = f'{{"event": "call.completed", "call_id": "c{n}"}}'.encode()
    return Delivery(
        kind=kind,
        event_type="call.completed",
        org_id=org_id,
        external_id=f"c{n}",
        content_type="application/json",
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
        received_at=dt.datetime(2024, 1, 20, 14, 30, tzinfo=dt.UTC) + dt.timedelta(seconds=n, microseconds=7),
        request_id=request_id,
    )
