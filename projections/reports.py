"""`mightycall_reports`: one row per metric of a report, reflecting the report's latest event."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from projections.model import Event, Key, Projection, Row, Table, id_of, is_older
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
    report = _payload(event)
    return [(event.org_id, report.report_id, metric_type) for metric_type in _metrics(report)]


def apply(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    report = _payload(event)
    reported_at = report.timestamp or _NO_TIMESTAMP
    if row is not None and is_older(
        reported_at, event.id, row["reported_at"] or _NO_TIMESTAMP, row["event_id"]
    ):
        return None
    metric = _metrics(report)[key[2]]
    return {
        "id": id_of(row, TABLE.name, key),
        "org_id": event.org_id,
        "report_id": report.report_id,
        "report_type": report.report_type,
        "report_date": report.date,
        "phone_number": report.phone_number,
        "phone_number_id": phones.id_for(event.org_id, report.phone_number),
        "metric_type": metric.metric_type,
        # repr gives the shortest decimal that reads back as the same float: 0.1, not 0.1000000000000000055…
        "value": Decimal(repr(metric.value)),
        "unit": metric.unit,
        "reported_at": report.timestamp,
        "event_id": event.id,
    }


PROJECTION = Projection(
    name="reports",
    version=1,
    kinds=frozenset({"reports"}),
    table=TABLE,
    keys=keys,
    apply=apply,
    phone_numbers=lambda event: [_payload(event).phone_number],
)
