"""`GET /metrics`: deliveries by kind and outcome, append latency, each projection's lag, in Prometheus'
text format, with no secret and nothing from a payload in it."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import SECOND_SECRET, SECRET, bearer
from tests.support.payloads import PATHS, SEED, body_for

CAUGHT_UP_WITHIN_S = 10  # a guard: the app's projector runs in-process here


async def _scrape(client) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return samples, response.text


async def test_deliveries_are_counted_by_kind_and_outcome(client, conn, org_id):
    calls = body_for("calls", org_id)
    assert (await client.post(PATHS["calls"], content=calls, headers=bearer())).status_code == 202
    assert (await client.post(PATHS["calls"], content=calls, headers=bearer())).status_code == 200
    assert (
        await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
    ).status_code == 202
    refused = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer("wrong"))
    assert refused.status_code == 401
    invalid = await client.post(PATHS["reports"], content=b"{}", headers=bearer())
    assert invalid.status_code == 400

    samples, text = await _scrape(client)
    counted = {
        (dict(labels)["kind"], dict(labels)["outcome"]): value
        for (name, labels), value in samples.items()
        if name == "mightycall_deliveries_total"
    }
    assert counted == {
        ("calls", "accepted"): 1,
        ("calls", "duplicate"): 1,
        ("sms", "accepted"): 1,
        ("sms", "unauthorized"): 1,
        ("reports", "invalid_payload"): 1,
    }
    # Every delivery that reached the appender, accepted or found logged already, was timed.
    assert samples[("mightycall_append_seconds_count", ())] == 3
    assert samples[("mightycall_database_up", ())] == 1
    for never in (SECRET, SECOND_SECRET, str(org_id), SEED["sms"]["message"], "call_12345"):
        assert never not in text


async def test_projection_lag_and_a_stopped_projection(client, conn, org_id):
    for n in range(3):
        body = body_for("calls", org_id, call_id=f"call-{n}")
        assert (await client.post(PATHS["calls"], content=body, headers=bearer())).status_code == 202

    for _ in range(CAUGHT_UP_WITHIN_S * 20):
        samples, _ = await _scrape(client)
        lag = {
            dict(labels)["projection"]: value
            for (name, labels), value in samples.items()
            if name == "mightycall_projection_lag_events"
        }
        if not any(lag.values()):
            break
        await asyncio.sleep(0.05)
    assert lag == {"calls": 0, "sms": 0, "recordings": 0, "reports": 0}
    assert samples[("mightycall_projection_lag_seconds", (("projection", "calls"),))] == 0
    assert samples[("mightycall_projection_stopped", (("projection", "calls"),))] == 0

    # A projection stopped on an event, and behind: the metrics say so.
    await conn.execute(
        "UPDATE projection_checkpoints SET position = 1, error = 'event 2: broken', error_position = 2"
        " WHERE name = 'sms'"
    )
    await conn.execute("CREATE TABLE mightycall_sms_messages__rebuild (LIKE mightycall_sms_messages)")
    samples, _ = await _scrape(client)
    assert samples[("mightycall_projection_stopped", (("projection", "sms"),))] == 1
    assert samples[("mightycall_projection_lag_events", (("projection", "sms"),))] == 2
    assert samples[("mightycall_projection_lag_seconds", (("projection", "sms"),))] > 0
    assert samples[("mightycall_projection_rebuilding", (("projection", "sms"),))] == 1
    assert samples[("mightycall_projection_rebuilding", (("projection", "calls"),))] == 0


async def test_a_running_rebuild_reports_its_progress(client, conn):
    await conn.execute("INSERT INTO rebuild_progress (name, position, head) VALUES ('calls', 400, 1000)")
    # A row with no shadow table is what a rebuild that died leaves behind: not progress.
    await conn.execute("INSERT INTO rebuild_progress (name, position, head) VALUES ('sms', 7, 9)")
    await conn.execute("CREATE TABLE calls__rebuild (LIKE calls)")

    samples, _ = await _scrape(client)

    assert samples[("mightycall_rebuild_position", (("projection", "calls"),))] == 400
    assert samples[("mightycall_rebuild_head", (("projection", "calls"),))] == 1000
    assert samples[("mightycall_rebuild_position", (("projection", "sms"),))] == 0
    assert samples[("mightycall_rebuild_head", (("projection", "sms"),))] == 0


async def test_the_projectors_retries_are_read_from_the_database(client, conn):
    # The live projector counts them there (projections/live/retries.py): it runs in a process of its own.
    await conn.execute(
        "INSERT INTO projection_retries (name, reason, retries) VALUES"
        " ('calls', 'LockNotAvailableError', 3), ('calls', 'DiskFullError', 1), ('sms', 'DiskFullError', 2)"
    )

    samples, _ = await _scrape(client)

    retries = {
        tuple(label for _, label in labels): value
        for (name, labels), value in samples.items()
        if name == "mightycall_projection_retries_total"
    }
    assert retries == {
        ("calls", "LockNotAvailableError"): 3,
        ("calls", "DiskFullError"): 1,
        ("sms", "DiskFullError"): 2,
    }
