"""A report's rows are those of its newest version (payload timestamp, then log position), live and in a
rebuild: a metric the newest version lacks has no row, and an older version arriving late changes
nothing, whichever metrics it carries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from projections.registry import PROJECTIONS
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, catch_up, rebuilt_rows, table_rows

REPORTS = PROJECTIONS["reports"]


def version(minute: int, **metrics: int) -> tuple[str, dict[str, Any]]:
    """The seed report as sent at 00:`minute`, carrying `metrics` (metric type -> value)."""
    return (
        "reports",
        {
            **SEED["reports"],
            "timestamp": f"2024-01-21T00:{minute:02d}:00Z",
            "report_type": f"daily-{minute}",
            "metrics": [{"metric_type": m, "value": v, "unit": "count"} for m, v in metrics.items()],
        },
    )


async def metrics_of(conn, org_id) -> dict[str, tuple[Decimal, str, dt.datetime]]:
    rows = await table_rows(conn, "mightycall_reports", org_id)
    return {r["metric_type"]: (r["value"], r["report_type"], r["reported_at"]) for r in rows}


async def test_a_newer_version_without_a_metric_leaves_no_row_for_it(pool, conn, org_id):
    await append_payloads(conn, org_id, [version(10, calls_total=5, sms_sent=3)])
    await catch_up(pool, projections=[REPORTS])
    await append_payloads(conn, org_id, [version(20, calls_total=7)])
    await catch_up(pool, projections=[REPORTS])

    newest = dt.datetime(2024, 1, 21, 0, 20, tzinfo=dt.UTC)
    assert await metrics_of(conn, org_id) == {"calls_total": (Decimal(7), "daily-20", newest)}
    assert await table_rows(conn, "mightycall_reports") == await rebuilt_rows(conn, REPORTS)


async def test_an_older_version_arriving_late_changes_nothing(pool, conn, org_id):
    await append_payloads(conn, org_id, [version(20, calls_total=7)])
    await catch_up(pool, projections=[REPORTS])
    before = await table_rows(conn, "mightycall_reports")

    # Older, and with metrics the newest version does not carry: none of them may come back.
    await append_payloads(conn, org_id, [version(10, calls_total=5, sms_sent=3, calls_missed=1)])
    await catch_up(pool, projections=[REPORTS])

    assert await table_rows(conn, "mightycall_reports") == before
    assert await table_rows(conn, "mightycall_reports") == await rebuilt_rows(conn, REPORTS)


async def test_versions_in_one_batch_leave_the_newest_alone(pool, conn, org_id):
    await append_payloads(
        conn,
        org_id,
        [version(20, calls_total=7), version(30, sms_sent=1), version(10, calls_missed=2, calls_total=1)],
    )
    await catch_up(pool, projections=[REPORTS])

    newest = dt.datetime(2024, 1, 21, 0, 30, tzinfo=dt.UTC)
    assert await metrics_of(conn, org_id) == {"sms_sent": (Decimal(1), "daily-30", newest)}
    assert await table_rows(conn, "mightycall_reports") == await rebuilt_rows(conn, REPORTS)
