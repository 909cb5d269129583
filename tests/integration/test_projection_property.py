"""For any sequence of webhooks (duplicates, out of order, recordings before their calls, report versions
in any order, keys of any characters), applied live in batches of any size as they arrive, no projection
stops, the live tables equal a rebuild from the log, row for row, ids included, and they hold what the
webhooks say: a row per distinct natural key, and a report's rows are its newest version's."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.registry import PROJECTIONS
from projections.runner import step
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

_BASE = dt.datetime(2024, 1, 20, 14, 0, tzinfo=dt.UTC)
# Keys that joined with a separator would be one: ("a\x1fb", "c") and ("a", "b\x1fc").
_CALLS = ["c0", "c1", "a", "a\x1fb"]
_URLS = ["https://r.example/0.mp3", "c", "b\x1fc"]
_METRICS = ["calls_total", "calls_missed", "sms_sent"]
_PHONES = ["+12125551234", "(212) 555-1234", "+14155550000", None]


def _stamp(minute: int) -> str:
    return (_BASE + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


# Few keys and few distinct timestamps: collisions, ties and exact redeliveries are the point.
minutes = st.integers(0, 3)
# Any characters PostgreSQL text can hold (the door refuses \u0000): separators, control characters,
# digits and spaces.
odd = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=3)
call_ids = st.one_of(st.sampled_from(_CALLS), odd)
urls = st.one_of(st.sampled_from(_URLS), odd)

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
    call_ids,
    st.one_of(urls, st.none()),
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
    call_ids,
    urls,
    minutes,
    st.integers(0, 3),
    st.sampled_from(_PHONES),
)
sms = st.builds(
    lambda sms_id, minute, status: (
        "sms",
        {**SEED["sms"], "sms_id": sms_id, "timestamp": _stamp(minute), "status": status},
    ),
    st.one_of(st.sampled_from(["s0", "s1"]), odd),
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
    st.one_of(st.sampled_from(["r0", "r1", "r\x1f"]), odd),
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

    head = await conn.fetchval("SELECT position FROM event_log_head")
    checkpoints = await conn.fetch("SELECT name, position, error FROM projection_checkpoints")
    assert {(r["name"], r["position"], r["error"]) for r in checkpoints} == {
        (n, head, None) for n in PROJECTIONS
    }
    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(conn, projection), (
            projection.name
        )
    sent = [(kind, payload) for webhooks, _, _ in steps for kind, payload in webhooks]
    assert await _keys(conn, org_id) == _expected_keys(sent)
    assert await _reports(conn, org_id) == _newest_versions(sent)


async def _keys(conn, org_id) -> dict[str, set[tuple[str, ...]]]:
    def of(rows: list[dict[str, Any]], *names: str) -> set[tuple[str, ...]]:
        keys = [tuple(row[name] for name in names) for row in rows]
        assert len(keys) == len(set(keys)) == len({row["id"] for row in rows})
        return set(keys)

    return {
        "calls": of(await table_rows(conn, "calls", org_id), "call_id"),
        "sms": of(await table_rows(conn, "mightycall_sms_messages", org_id), "sms_id"),
        "recordings": of(await table_rows(conn, "mightycall_recordings", org_id), "call_id", "url"),
    }


def _expected_keys(sent: list[tuple[str, dict[str, Any]]]) -> dict[str, set[tuple[str, ...]]]:
    return {
        "calls": {(p["call_id"],) for kind, p in sent if kind == "calls"},
        "sms": {(p["sms_id"],) for kind, p in sent if kind == "sms"},
        "recordings": {(p["call_id"], p["url"]) for kind, p in sent if kind == "recordings"}
        | {(p["call_id"], p["recording_url"]) for kind, p in sent if kind == "calls" and p["recording_url"]},
    }


async def _reports(conn, org_id) -> dict[tuple[str, str], tuple[Decimal, dt.datetime | None]]:
    rows = await table_rows(conn, "mightycall_reports", org_id)
    return {(r["report_id"], r["metric_type"]): (r["value"], r["reported_at"]) for r in rows}


def _newest_versions(sent: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], tuple[Decimal, Any]]:
    """Each report's newest version (a timestamp after none, then the later timestamp, then the later
    position in the log), metric by metric: the last of a repeated metric stands."""
    newest: dict[str, tuple[tuple[bool, str, int], dict[str, Any]]] = {}
    for position, (kind, payload) in enumerate(sent):
        if kind != "reports":
            continue
        stamp = payload["timestamp"]
        rank = (stamp is not None, stamp or "", position)
        if payload["report_id"] not in newest or rank > newest[payload["report_id"]][0]:
            newest[payload["report_id"]] = (rank, payload)
    expected = {}
    for report_id, (_, payload) in newest.items():
        stamp = payload["timestamp"]
        reported_at = None if stamp is None else dt.datetime.fromisoformat(stamp)
        for metric in payload["metrics"]:
            expected[(report_id, metric["metric_type"])] = (Decimal(metric["value"]), reported_at)
    return expected
