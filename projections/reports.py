"""`mightycall_reports`: one row per metric of a report's newest version.

A report is sent again when it changes, and a newer version may drop a metric an older one had. So the
table is kept in sets (Table.in_sets): each report's rows are one set, and a version replaces the whole
set, its dropped metrics included. Every row of a set carries the version's `reported_at` and
`event_id`, which is how a late older version, even one with a metric the set lacks, is known to be
older: it changes nothing. A version carries at least one metric (service/core/payloads.py), so a report's
set is never empty once one version has been applied.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from projections.model import Event, Key, Projection, RowSet, Table, id_of, is_older
from service.core.payloads import Metric, ReportPayload
from service.core.phones import PhoneBook

__all__ = ["PROJECTION"]

TABLE = Table(
    name="mightycall_reports",
    key=("org_id", "report_id", "metric_type"),
    columns={
        "id": "uuid",
        "org_id": "uuid",
        "report_id": "text",
        "report_type": "text",
        "report_date": "date",
        "phone_number": "text",
        "phone_number_id": "uuid",
        "metric_type": "text",
        "value": "numeric",
        "unit": "text",
        "reported_at": "timestamptz",
        "event_id": "bigint",
    },
    in_sets=True,
)

# A report without a timestamp orders before any report with one, then by log position.
_NO_TIMESTAMP = dt.datetime.min.replace(tzinfo=dt.UTC)


def _payload(event: Event) -> ReportPayload:
    assert isinstance(event.payload, ReportPayload)
    return event.payload


def _metrics(report: ReportPayload) -> dict[str, Metric]:
    # A metric repeated within one report: the last one stands, as with a repeated JSON key.
    return {metric.metric_type: metric for metric in report.metrics}


def keys(event: Event) -> list[Key]:
    return [(event.org_id, _payload(event).report_id)]


def _version(rows: RowSet) -> tuple[Any, int]:
    """The newest version the set's rows come from. (A table built before the sets were kept whole can
    hold rows of older versions beside it.)"""
    return max((row["reported_at"] or _NO_TIMESTAMP, row["event_id"]) for row in rows.values())


def apply(rows: RowSet | None, event: Event, key: Key, phones: PhoneBook) -> RowSet | None:
    report = _payload(event)
    if rows and is_older(report.timestamp or _NO_TIMESTAMP, event.id, *_version(rows)):
        return None
    org_id, report_id = key
    phone_number_id = phones.id_for(org_id, report.phone_number)
    return {
        metric_type: {
            "id": id_of(
                rows.get(metric_type) if rows else None, TABLE.name, (org_id, report_id, metric_type)
            ),
            "org_id": org_id,
            "report_id": report_id,
            "report_type": report.report_type,
            "report_date": report.date,
            "phone_number": report.phone_number,
            "phone_number_id": phone_number_id,
            "metric_type": metric_type,
            # repr gives the shortest decimal that reads back as the same float: 0.1, not
            # 0.1000000000000000055…
            "value": Decimal(repr(metric.value)),
            "unit": metric.unit,
            "reported_at": report.timestamp,
            "event_id": event.id,
        }
        for metric_type, metric in _metrics(report).items()
    }


PROJECTION = Projection(
    name="reports",
    # 2: ids from an unambiguous encoding of the key (model.row_id); a report's rows are its newest
    # version's alone.
    version=2,
    kinds=frozenset({"reports"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [_payload(event).phone_number],
    # A version replaces every row of its set: no number a stored row holds is linked again.
    row_phone_numbers=lambda rows: [],
)
