"""The `reports` projection as pure functions: one row per (org_id, report_id, metric_type), the values
of the latest report event (by payload timestamp, a report without one first, then by log position)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

import pytest

from projections.model import Event, Row, row_id
from projections.reports import PROJECTION
from service.core.phones import PhoneBook
from tests.support.events import ORG, OTHER_ORG, event, fold, moment
from tests.support.payloads import DROP, SEED

TABLE = "mightycall_reports"
PHONE_ID = uuid.UUID("7e6d5c4b-3a29-4817-9f0e-d1c2b3a49586")
PHONES = PhoneBook(default_region="US", ids={(ORG, "+12125551234"): PHONE_ID})
KEY = (ORG, "rep_12345", "calls_total")


def report(event_id: int, at: int | None = 0, **changes: Any) -> Event:
    """A report event at `at` seconds, or without a timestamp when `at` is None."""
    if at is None:
        return event("reports", event_id, timestamp=DROP, **changes)
    return event("reports", event_id, at=at, **changes)


def total(value: float) -> list[dict[str, Any]]:
    return [{"metric_type": "calls_total", "value": value, "unit": "count"}]


def applied(each: Event, key: tuple[Any, ...] = KEY, row: Row | None = None) -> Row:
    result = PROJECTION.apply(row, each, key, PHONES)
    assert result is not None
    return result


def test_keys_name_each_metric_of_the_report() -> None:
    assert PROJECTION.keys(report(1)) == [
        (ORG, "rep_12345", m["metric_type"]) for m in SEED["reports"]["metrics"]
    ]
    assert PROJECTION.keys(report(1, org_id=OTHER_ORG, report_id="rep_9", metrics=total(1))) == [
        (OTHER_ORG, "rep_9", "calls_total")
    ]


def test_a_metric_repeated_in_one_report_is_one_row_with_its_last_value() -> None:
    metrics = [
        {"metric_type": "calls_total", "value": 1, "unit": "count"},
        {"metric_type": "sms_sent", "value": 2, "unit": "count"},
        {"metric_type": "calls_total", "value": 3, "unit": "calls"},
    ]
    each = report(1, metrics=metrics)
    assert PROJECTION.keys(each) == [(ORG, "rep_12345", "calls_total"), (ORG, "rep_12345", "sms_sent")]
    row = applied(each)
    assert (row["value"], row["unit"]) == (Decimal(3), "calls")


def test_a_metric_makes_its_row_from_the_report() -> None:
    row = applied(event("reports", 7))  # the seed report, as sent
    assert row == {
        "id": row_id(TABLE, ORG, "rep_12345", "calls_total"),
        "org_id": ORG,
        "report_id": "rep_12345",
        "report_type": "daily",
        "report_date": dt.date(2024, 1, 20),
        "phone_number": "+12125551234",
        "phone_number_id": PHONE_ID,
        "metric_type": "calls_total",
        "value": Decimal(42),
        "unit": "count",
        "reported_at": dt.datetime(2024, 1, 20, 23, 59, 59, tzinfo=dt.UTC),
        "event_id": 7,
    }
    assert set(row) == set(PROJECTION.table.columns)


def test_every_metric_of_a_report_gets_its_own_values() -> None:
    each = report(1)
    rows = [applied(each, key) for key in PROJECTION.keys(each)]
    assert [(r["metric_type"], r["value"], r["unit"]) for r in rows] == [
        (m["metric_type"], Decimal(m["value"]), m["unit"]) for m in SEED["reports"]["metrics"]
    ]
    assert len({r["id"] for r in rows}) == len(rows)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, Decimal(42)),
        (240, Decimal(240)),
        (0, Decimal(0)),
        (0.1, Decimal("0.1")),
        (2.5, Decimal("2.5")),
        (123456.789, Decimal("123456.789")),
        (-3.75, Decimal("-3.75")),
        (1e-7, Decimal("1E-7")),
    ],
)
def test_the_value_is_the_decimal_the_json_wrote(value: float, expected: Decimal) -> None:
    row = applied(report(1, metrics=total(value)))
    assert isinstance(row["value"], Decimal)
    assert row["value"] == expected


@pytest.mark.parametrize("unit", ["seconds", "%", None, DROP])
def test_the_unit_is_kept(unit: object) -> None:
    metric = {"metric_type": "calls_total", "value": 1, "unit": unit}
    row = applied(report(1, metrics=[{k: v for k, v in metric.items() if v is not DROP}]))
    assert row["unit"] == (None if unit is DROP else unit)


@pytest.mark.parametrize(
    ("date", "expected"), [("2024-02-29", dt.date(2024, 2, 29)), ("1999-12-31", dt.date(1999, 12, 31))]
)
def test_the_report_date_is_the_payloads(date: str, expected: dt.date) -> None:
    assert applied(report(1, date=date))["report_date"] == expected


def test_a_report_without_a_timestamp_has_no_reported_at() -> None:
    assert applied(report(1, at=None))["reported_at"] is None


# (seconds or None for no timestamp, event id) of the event that made the row, then of the next one;
# whether it replaces the row.
ORDERINGS = [
    pytest.param((0, 5), (1, 3), True, id="newer-timestamp-lower-id"),
    pytest.param((0, 5), (1, 9), True, id="newer-timestamp-higher-id"),
    pytest.param((1, 5), (0, 9), False, id="older-timestamp-higher-id"),
    pytest.param((1, 5), (0, 3), False, id="older-timestamp-lower-id"),
    pytest.param((0, 5), (0, 6), True, id="same-timestamp-higher-id"),
    pytest.param((0, 5), (0, 4), False, id="same-timestamp-lower-id"),
    pytest.param((0, 5), (0, 5), False, id="same-timestamp-same-id"),
    pytest.param((None, 9), (-(10**6), 1), True, id="timestamp-after-none"),
    pytest.param((-(10**6), 1), (None, 9), False, id="none-before-timestamp"),
    pytest.param((None, 5), (None, 6), True, id="no-timestamps-higher-id"),
    pytest.param((None, 5), (None, 4), False, id="no-timestamps-lower-id"),
    pytest.param((None, 5), (None, 5), False, id="no-timestamps-same-id"),
]


@pytest.mark.parametrize(("first", "second", "replaces"), ORDERINGS)
def test_a_row_never_moves_backwards(
    first: tuple[int | None, int], second: tuple[int | None, int], replaces: bool
) -> None:
    row = applied(report(first[1], at=first[0], metrics=total(1)))
    later = report(second[1], at=second[0], metrics=total(2), report_type="corrected")
    result = PROJECTION.apply(row, later, KEY, PHONES)
    if replaces:
        assert result == applied(later)
        assert result is not None
        assert (result["value"], result["report_type"], result["event_id"]) == (
            Decimal(2),
            "corrected",
            second[1],
        )
        assert result["reported_at"] == (None if second[0] is None else moment(second[0]))
    else:
        assert result is None


@pytest.mark.parametrize("at", [0, None])
def test_a_redelivery_further_down_the_log_changes_only_the_event_id(at: int | None) -> None:
    row = applied(report(4, at=at))
    assert PROJECTION.apply(row, report(9, at=at), KEY, PHONES) == {**row, "event_id": 9}
    assert PROJECTION.apply(row, report(4, at=at), KEY, PHONES) is None


# (seconds or None, event id): ids deliberately out of step with timestamps.
HISTORIES = [
    pytest.param([(0, 4), (10, 2), (20, 1), (5, 3)], id="distinct"),
    pytest.param([(10, 4), (10, 2), (20, 1), (20, 3)], id="ties"),
    pytest.param([(None, 4), (None, 2), (-50, 1), (None, 3)], id="some-without-timestamp"),
    pytest.param([(None, 4), (None, 2), (None, 1), (None, 3)], id="none-with-timestamp"),
]


def _rank(at: int | None, event_id: int) -> tuple[bool, int, int]:
    """The order the rule sets: no timestamp before any timestamp, then by timestamp, then by log position."""
    return (at is not None, at or 0, event_id)


@pytest.mark.parametrize("history", HISTORIES)
def test_any_delivery_order_ends_with_the_latest_event_alone(history: list[tuple[int | None, int]]) -> None:
    events = [report(event_id, at=at, metrics=total(event_id * 10)) for at, event_id in history]
    latest = events[history.index(max(history, key=lambda pair: _rank(*pair)))]
    expected = applied(latest)
    for order in itertools.permutations(events):
        assert fold(PROJECTION, order, KEY, PHONES) == expected


def test_every_row_names_the_event_that_last_changed_it() -> None:
    row = fold(PROJECTION, [report(3, at=0), report(8, at=5), report(6, at=1), report(9, at=None)], KEY)
    assert row is not None
    assert row["event_id"] == 8


@pytest.mark.parametrize(
    "number", ["+12125551234", "(212) 555-1234", "212.555.1234", "+1 212 555 1234", "1-212-555-1234"]
)
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = applied(report(1, phone_number=number))
    assert (row["phone_number"], row["phone_number_id"]) == (number, PHONE_ID)


@pytest.mark.parametrize(
    ("org_id", "number"),
    [
        pytest.param(OTHER_ORG, "+12125551234", id="another-org"),
        pytest.param(ORG, "+12125559999", id="unknown-number"),
        pytest.param(ORG, "abc", id="not-a-number"),
        pytest.param(ORG, None, id="no-number"),
    ],
)
def test_no_phone_number_id_without_a_match(org_id: uuid.UUID, number: str | None) -> None:
    row = applied(report(1, org_id=org_id, phone_number=number), (org_id, "rep_12345", "calls_total"))
    assert (row["phone_number"], row["phone_number_id"]) == (number, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(report(1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]
    assert PROJECTION.phone_numbers(report(1, phone_number=DROP)) == [None]


def test_row_ids_derive_from_the_natural_key() -> None:
    def row_for(org_id: uuid.UUID, report_id: str, metric_type: str, event_id: int) -> uuid.UUID:
        each = report(event_id, org_id=org_id, report_id=report_id)
        return applied(each, (org_id, report_id, metric_type))["id"]

    expected = row_id(TABLE, ORG, "rep_1", "calls_total")
    assert row_for(ORG, "rep_1", "calls_total", 1) == row_for(ORG, "rep_1", "calls_total", 2) == expected
    ids = {
        row_for(ORG, "rep_1", "calls_total", 1),
        row_for(ORG, "rep_1", "sms_sent", 1),
        row_for(ORG, "rep_2", "calls_total", 1),
        row_for(OTHER_ORG, "rep_1", "calls_total", 1),
    }
    assert len(ids) == 4
    assert expected != row_id("calls", ORG, "rep_1", "calls_total")


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(report(9, at=60, metrics=total(7)), id="replacing"),
        pytest.param(report(2, at=None, metrics=total(7)), id="ignored"),
    ],
)
def test_apply_is_pure(later: Event) -> None:
    row = applied(report(5))
    given = dict(row)
    first = PROJECTION.apply(given, later, KEY, PHONES)
    assert given == row
    assert PROJECTION.apply(given, later, KEY, PHONES) == first
    assert PROJECTION.apply(None, later, KEY, PHONES) == PROJECTION.apply(None, later, KEY, PHONES)
