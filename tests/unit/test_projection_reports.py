"""The `reports` projection as pure functions: a report's rows are one set, one row per metric of its
newest version (by payload timestamp, a report without one first, then by log position)."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

import pytest

from projections.model import Event, Row, RowSet, row_id
from projections.reports import PROJECTION
from service.core.phones import PhoneBook
from tests.support.events import ORG, OTHER_ORG, event, fold, moment
from tests.support.payloads import DROP, SEED

TABLE = "mightycall_reports"
PHONE_ID = uuid.UUID("7e6d5c4b-3a29-4817-9f0e-d1c2b3a49586")
PHONES = PhoneBook(default_region="US", ids={(ORG, "+12125551234"): PHONE_ID})
KEY = (ORG, "rep_12345")


def report(event_id: int, at: int | None = 0, **changes: Any) -> Event:
    """A report event at `at` seconds, or without a timestamp when `at` is None."""
    if at is None:
        return event("reports", event_id, timestamp=DROP, **changes)
    return event("reports", event_id, at=at, **changes)


def total(value: float) -> list[dict[str, Any]]:
    return [{"metric_type": "calls_total", "value": value, "unit": "count"}]


def applied(each: Event, key: tuple[Any, ...] = KEY, rows: RowSet | None = None) -> RowSet:
    result = PROJECTION.apply(rows, each, key, PHONES)
    assert result is not None
    return result


def total_row(each: Event, key: tuple[Any, ...] = KEY) -> Row:
    """The calls_total row of the report's set."""
    return applied(each, key)["calls_total"]


def test_keys_name_the_report_whose_set_it_replaces() -> None:
    assert PROJECTION.table.in_sets
    assert PROJECTION.keys(report(1)) == [(ORG, "rep_12345")]
    assert PROJECTION.keys(report(1, org_id=OTHER_ORG, report_id="rep_9", metrics=total(1))) == [
        (OTHER_ORG, "rep_9")
    ]


def test_the_set_holds_a_row_for_each_metric_of_the_report() -> None:
    rows = applied(report(1))
    assert list(rows) == [m["metric_type"] for m in SEED["reports"]["metrics"]]
    assert [row["metric_type"] for row in rows.values()] == list(rows)


def test_a_metric_repeated_in_one_report_is_one_row_with_its_last_value() -> None:
    metrics = [
        {"metric_type": "calls_total", "value": 1, "unit": "count"},
        {"metric_type": "sms_sent", "value": 2, "unit": "count"},
        {"metric_type": "calls_total", "value": 3, "unit": "calls"},
    ]
    rows = applied(report(1, metrics=metrics))
    assert list(rows) == ["calls_total", "sms_sent"]
    assert (rows["calls_total"]["value"], rows["calls_total"]["unit"]) == (Decimal(3), "calls")


def test_a_metric_makes_its_row_from_the_report() -> None:
    row = total_row(event("reports", 7))  # the seed report, as sent
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
    rows = list(applied(report(1)).values())
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
    row = total_row(report(1, metrics=total(value)))
    assert isinstance(row["value"], Decimal)
    assert row["value"] == expected


@pytest.mark.parametrize("unit", ["seconds", "%", None, DROP])
def test_the_unit_is_kept(unit: object) -> None:
    metric = {"metric_type": "calls_total", "value": 1, "unit": unit}
    row = total_row(report(1, metrics=[{k: v for k, v in metric.items() if v is not DROP}]))
    assert row["unit"] == (None if unit is DROP else unit)


@pytest.mark.parametrize(
    ("date", "expected"), [("2024-02-29", dt.date(2024, 2, 29)), ("1999-12-31", dt.date(1999, 12, 31))]
)
def test_the_report_date_is_the_payloads(date: str, expected: dt.date) -> None:
    assert total_row(report(1, date=date))["report_date"] == expected


def test_a_report_without_a_timestamp_has_no_reported_at() -> None:
    assert total_row(report(1, at=None))["reported_at"] is None


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
    rows = applied(report(first[1], at=first[0], metrics=total(1)))
    later = report(second[1], at=second[0], metrics=total(2), report_type="corrected")
    result = PROJECTION.apply(rows, later, KEY, PHONES)
    if replaces:
        assert result == applied(later)
        assert result is not None
        assert (
            result["calls_total"]["value"],
            result["calls_total"]["report_type"],
            result["calls_total"]["event_id"],
        ) == (
            Decimal(2),
            "corrected",
            second[1],
        )
        assert result["calls_total"]["reported_at"] == (None if second[0] is None else moment(second[0]))
    else:
        assert result is None


@pytest.mark.parametrize("at", [0, None])
def test_a_redelivery_further_down_the_log_changes_only_the_event_id(at: int | None) -> None:
    rows = applied(report(4, at=at))
    assert PROJECTION.apply(rows, report(9, at=at), KEY, PHONES) == {
        metric: {**row, "event_id": 9} for metric, row in rows.items()
    }
    assert PROJECTION.apply(rows, report(4, at=at), KEY, PHONES) is None


def test_a_newer_version_without_a_metric_leaves_no_row_for_it() -> None:
    rows = applied(report(1, at=0))
    newer = report(2, at=10, metrics=total(7))
    assert len(rows) == len(SEED["reports"]["metrics"])
    assert applied(newer, rows=rows) == {"calls_total": applied(newer)["calls_total"]}


def test_an_older_version_with_a_metric_the_set_lacks_changes_nothing() -> None:
    rows = applied(report(2, at=10, metrics=total(7)))
    older = report(3, at=0)  # every seed metric, calls_total's among them
    assert PROJECTION.apply(rows, older, KEY, PHONES) is None


def test_a_metric_a_newer_version_keeps_keeps_its_id() -> None:
    rows = applied(report(1, at=0))
    kept = {**rows["calls_total"], "id": uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")}
    assert (
        applied(report(2, at=10, metrics=total(7)), rows={"calls_total": kept})["calls_total"]["id"]
        == kept["id"]
    )


def test_the_newest_of_rows_left_by_older_versions_decides() -> None:
    # A table built before a report's rows were kept as one set may hold rows of several versions.
    rows = {
        "calls_total": total_row(report(5, at=20)),
        "sms_sent": applied(report(1, at=0))["sms_sent"],
    }
    assert PROJECTION.apply(rows, report(6, at=10), KEY, PHONES) is None
    assert set(applied(report(7, at=30, metrics=total(1)), rows=rows)) == {"calls_total"}


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


def _metrics(event_id: int) -> list[dict[str, Any]]:
    """Each version its own metrics: some dropped, some added from one version to the next."""
    names = ["calls_total", "sms_sent", "calls_missed", "sms_received"]
    return [
        {"metric_type": name, "value": event_id * 10 + n, "unit": "count"}
        for n, name in enumerate(names)
        if (event_id >> n) & 1 or n == 3
    ]


@pytest.mark.parametrize("history", HISTORIES)
def test_any_delivery_order_ends_with_the_latest_event_alone(history: list[tuple[int | None, int]]) -> None:
    events = [report(event_id, at=at, metrics=_metrics(event_id)) for at, event_id in history]
    latest = events[history.index(max(history, key=lambda pair: _rank(*pair)))]
    expected = applied(latest)
    for order in itertools.permutations(events):
        assert fold(PROJECTION, order, KEY, PHONES) == expected


def test_every_row_names_the_event_that_last_changed_it() -> None:
    rows = fold(PROJECTION, [report(3, at=0), report(8, at=5), report(6, at=1), report(9, at=None)], KEY)
    assert rows is not None
    assert {row["event_id"] for row in rows.values()} == {8}


@pytest.mark.parametrize(
    "number", ["+12125551234", "(212) 555-1234", "212.555.1234", "+1 212 555 1234", "1-212-555-1234"]
)
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = total_row(report(1, phone_number=number))
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
    row = total_row(report(1, org_id=org_id, phone_number=number), (org_id, "rep_12345"))
    assert (row["phone_number"], row["phone_number_id"]) == (number, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(report(1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]
    assert PROJECTION.phone_numbers(report(1, phone_number=DROP)) == [None]
    # A version replaces the whole set: no number a stored row holds is linked again.
    assert PROJECTION.row_phone_numbers(applied(report(1))) == []


def test_row_ids_derive_from_the_natural_key() -> None:
    def row_for(org_id: uuid.UUID, report_id: str, metric_type: str, event_id: int) -> uuid.UUID:
        each = report(event_id, org_id=org_id, report_id=report_id)
        return applied(each, (org_id, report_id))[metric_type]["id"]

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
    rows = applied(report(5))
    given = copy.deepcopy(rows)
    first = PROJECTION.apply(given, later, KEY, PHONES)
    assert given == rows
    assert PROJECTION.apply(given, later, KEY, PHONES) == first
    assert PROJECTION.apply(None, later, KEY, PHONES) == PROJECTION.apply(None, later, KEY, PHONES)
