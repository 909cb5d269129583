"""Export and verification stream the log: their memory does not grow with the size of the log."""

from __future__ import annotations

import tracemalloc

from service.audit.queries import EventFilter, export_line, stream_events
from service.eventlog.verify import verify_log
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads

EVENTS = 6000
BODY_PADDING = 4000  # bytes per event: ~24 MB of bodies in all, ~32 MB once exported as base64
PEAK_LIMIT = 8 * 1024 * 1024


async def test_export_and_verify_stream_with_flat_memory(conn, org_id):
    padding = "x" * BODY_PADDING
    for start in range(0, EVENTS, 500):
        await append_payloads(
            conn,
            org_id,
            [
                ("sms", {**SEED["sms"], "sms_id": f"s{n}", "x-padding": padding})
                for n in range(start, start + 500)
            ],
        )

    tracemalloc.start()
    try:
        exported_bytes, count = 0, 0
        async for row in stream_events(conn, EventFilter()):
            exported_bytes += len(export_line(row)["body_base64"])
            count += 1
        _, export_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = await verify_log(conn)
        _, verify_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == EVENTS
    assert result.ok and result.head_id == EVENTS
    # Everything held at once would be several times the limit.
    assert exported_bytes > 4 * PEAK_LIMIT
    assert export_peak < PEAK_LIMIT, export_peak
    assert verify_peak < PEAK_LIMIT, verify_peak
