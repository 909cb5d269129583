"""For any sequence of webhooks (duplicates, out of order, recordings before their calls), applied live
in batches of any size as they arrive, the live tables equal a rebuild from the log, row for row."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.registry import PROJECTIONS
from projections.runner import step
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

_BASE = dt.datetime(2024, 1, 20, 14, 0, tzinfo=dt.UTC)
_CALLS = ["c0", "c1", "c2"]
_URLS = ["https://r.example/0.mp3", "https://r.example/1.mp3"]
_METRICS = ["calls_total", "calls_missed", "sms_sent"]
_PHONES = ["+12125551234", "(212) 555-1234", "+14155550000", None]


def _stamp(minute: int) -> str:
    return (_BASE + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


# Few keys and few distinct timestamps: collisions, ties and exact redeliveries are the point.
minutes = st.integers(0, 3)

calls = st.builds(
    lambda call, url, minute, duration, phone: (
        "calls",
        {
            **SEED["calls"],
            "call_id": call,
            "recording_url": url,
            "timestamp": _stamp(minute),
            "duration": duration,
        }
        | ({"phone_number": phone} if phone else {}),
    ),
    st.sampled_from(_CALLS),
    st.sampled_from([*_URLS, None]),
    minutes,
    st.integers(0, 3),
    st.sampled_from(_PHONES),
)
recordings = st.builds(
    lambda call, url, minute, size, phone: (
        "recordings",
        {**SEED["recordings"], "call_id": call, "url": url, "timestamp": _stamp(minute), "size_bytes": size}
        | {"phone_number": phone},
    ),
    st.sampled_from(_CALLS),
    st.sampled_from(_URLS),
    minutes,
    st.integers(0, 3),
    st.sampled_from(_PHONES),
)
sms = st.builds(
    lambda sms_id, minute, status: (
        "sms",
        {**SEED["sms"], "sms_id": sms_id, "timestamp": _stamp(minute), "status": status},
    ),
    st.sampled_from(["s0", "s1"]),
    minutes,
    st.sampled_from(["received", "read"]),
)
reports = st.builds(
    lambda report, minute, metrics: (
        "reports",
        {
            **SEED["reports"],
            "report_id": report,
            "timestamp": _stamp(minute) if minute else None,
            "metrics": [{"metric_type": m, "value": v, "unit": "count"} for m, v in metrics],
        },
    ),
    st.sampled_from(["r0", "r1"]),
    minutes,
    st.lists(st.tuples(st.sampled_from(_METRICS), st.integers(0, 5)), min_size=1, max_size=4),
)
webhook = st.one_of(calls, recordings, sms, reports)
# Each step appends a few webhooks (one transaction), then lets some projections take a batch.
steps = st.lists(
    st.tuples(
        st.lists(webhook, min_size=1, max_size=4),
        st.sets(st.sampled_from(list(PROJECTIONS))),
        st.integers(1, 4),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
async def test_live_projection_equals_rebuild(pool, conn, steps):
    # One organization per example: examples share the database (the log cannot be emptied).
    org_id = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'prop')", org_id)
    await conn.execute(
        "INSERT INTO phone_numbers (org_id, phone_number, e164) VALUES ($1, '212-555-1234', '+12125551234')",
        org_id,
    )
    for webhooks, stepping, limit in steps:
        await append_payloads(
            conn, org_id, [(kind, {k: v for k, v in p.items() if v is not None}) for kind, p in webhooks]
        )
        for name in sorted(stepping):
            await step(pool, PROJECTIONS[name], limit=limit, region=REGION)
    await catch_up(pool, limit=3)

    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(conn, projection), (
            projection.name
        )
