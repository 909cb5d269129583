"""The `calls` projection as pure functions: one row per (org_id, call_id), the latest event's values."""

from __future__ import annotations

import itertools
import uuid

import pytest

from projections.calls import PROJECTION
from projections.model import Event, row_id
from service.core.phones import PhoneBook
from tests.support.events import NO_PHONES, ORG, OTHER_ORG, event, fold, moment

PHONE_ID = uuid.UUID("0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f")
PHONES = PhoneBook(default_region="US", ids={(ORG, "+12125551234"): PHONE_ID})
KEY = (ORG, "call_12345")


def test_keys_are_the_org_and_call_id() -> None:
    assert PROJECTION.keys(event("calls", 1)) == [(ORG, "call_12345")]
    assert PROJECTION.keys(event("calls", 1, org_id=OTHER_ORG, call_id="call_9")) == [(OTHER_ORG, "call_9")]


def test_first_event_makes_the_row_from_the_payload() -> None:
    row = PROJECTION.apply(None, event("calls", 7), KEY, PHONES)
    assert row == {
        "id": row_id("calls", ORG, "call_12345"),
        "org_id": ORG,
        "call_id": "call_12345",
        "phone_number": "+12125551234",
        "phone_number_id": PHONE_ID,
        "caller_name": "John Doe",
        "caller_phone": "+14155555678",
        "duration": 180,
        "status": "completed",
        "direction": "inbound",
        "recording_url": "https://mightycall.com/recordings/rec_12345.mp3",
        "call_date": moment(0),
        "event_id": 7,
    }
    assert set(row) == set(PROJECTION.table.columns)


def test_fields_left_out_of_the_payload_are_null() -> None:
    row = PROJECTION.apply(
        None, event("calls", 1, caller_name=None, duration=None, recording_url=None), KEY, NO_PHONES
    )
    assert row is not None
    assert (row["caller_name"], row["duration"], row["recording_url"]) == (None, None, None)


# (seconds, event id) of the event that made the row, then of the next one; whether it replaces the row.
ORDERINGS = [
    pytest.param((0, 5), (1, 3), True, id="newer-timestamp-lower-id"),
    pytest.param((0, 5), (1, 9), True, id="newer-timestamp-higher-id"),
    pytest.param((1, 5), (0, 9), False, id="older-timestamp-higher-id"),
    pytest.param((1, 5), (0, 3), False, id="older-timestamp-lower-id"),
    pytest.param((0, 5), (0, 6), True, id="same-timestamp-higher-id"),
    pytest.param((0, 5), (0, 4), False, id="same-timestamp-lower-id"),
    pytest.param((0, 5), (0, 5), False, id="same-timestamp-same-id"),
]


@pytest.mark.parametrize(("first", "second", "replaces"), ORDERINGS)
def test_a_row_never_moves_backwards(first: tuple[int, int], second: tuple[int, int], replaces: bool) -> None:
    row = PROJECTION.apply(None, event("calls", first[1], at=first[0], status="ringing"), KEY, NO_PHONES)
    assert row is not None
    later = event("calls", second[1], at=second[0], status="completed", duration=300)
    result = PROJECTION.apply(row, later, KEY, NO_PHONES)
    if replaces:
        assert result == PROJECTION.apply(None, later, KEY, NO_PHONES)
        assert result is not None
        assert (result["status"], result["duration"], result["event_id"]) == ("completed", 300, second[1])
        assert result["call_date"] == moment(second[0])
    else:
        assert result is None


def test_a_redelivery_further_down_the_log_changes_only_the_event_id() -> None:
    row = PROJECTION.apply(None, event("calls", 4), KEY, PHONES)
    assert row is not None
    assert PROJECTION.apply(row, event("calls", 9), KEY, PHONES) == {**row, "event_id": 9}
    assert PROJECTION.apply(row, event("calls", 4), KEY, PHONES) is None


# (seconds, event id, status): ids deliberately out of step with timestamps; the last set has ties.
HISTORIES = [
    pytest.param(
        [(0, 4, "ringing"), (10, 2, "answered"), (20, 1, "completed"), (5, 3, "queued")], id="distinct"
    ),
    pytest.param(
        [(10, 4, "ringing"), (10, 2, "answered"), (20, 1, "completed"), (20, 3, "missed")], id="ties"
    ),
]


@pytest.mark.parametrize("history", HISTORIES)
def test_any_delivery_order_ends_with_the_latest_event_alone(history: list[tuple[int, int, str]]) -> None:
    events = [event("calls", event_id, at=at, status=status, duration=at) for at, event_id, status in history]
    latest = max(events, key=lambda each: (each.payload.timestamp, each.id))
    expected = PROJECTION.apply(None, latest, KEY, PHONES)
    for order in itertools.permutations(events):
        assert fold(PROJECTION, order, KEY, PHONES) == expected


def test_every_row_names_the_event_that_last_changed_it() -> None:
    row = fold(PROJECTION, [event("calls", 3, at=0), event("calls", 8, at=5), event("calls", 6, at=1)], KEY)
    assert row is not None
    assert row["event_id"] == 8


@pytest.mark.parametrize(
    "number", ["+12125551234", "(212) 555-1234", "212.555.1234", "+1 212 555 1234", "1-212-555-1234"]
)
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = PROJECTION.apply(None, event("calls", 1, phone_number=number), KEY, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (number, PHONE_ID)


@pytest.mark.parametrize(
    ("org_id", "number"),
    [
        pytest.param(OTHER_ORG, "+12125551234", id="another-org"),
        pytest.param(ORG, "+12125559999", id="unknown-number"),
        pytest.param(ORG, "abc", id="not-a-number"),
    ],
)
def test_no_phone_number_id_without_a_match(org_id: uuid.UUID, number: str) -> None:
    key = (org_id, "call_12345")
    row = PROJECTION.apply(None, event("calls", 1, org_id=org_id, phone_number=number), key, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (number, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(event("calls", 1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]


def test_row_ids_derive_from_the_natural_key() -> None:
    def row_for(org_id: uuid.UUID, call_id: str, event_id: int) -> uuid.UUID:
        row = PROJECTION.apply(
            None, event("calls", event_id, org_id=org_id, call_id=call_id), (org_id, call_id), PHONES
        )
        assert row is not None
        return row["id"]

    assert row_for(ORG, "call_1", 1) == row_for(ORG, "call_1", 2) == row_id("calls", ORG, "call_1")
    ids = {row_for(ORG, "call_1", 1), row_for(ORG, "call_2", 1), row_for(OTHER_ORG, "call_1", 1)}
    assert len(ids) == 3
    assert row_id("calls", ORG, "call_1") != row_id("mightycall_sms_messages", ORG, "call_1")


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(event("calls", 9, at=60, status="missed"), id="replacing"),
        pytest.param(event("calls", 2, at=-60, status="missed"), id="ignored"),
    ],
)
def test_apply_is_pure(later: Event) -> None:
    row = PROJECTION.apply(None, event("calls", 5), KEY, PHONES)
    assert row is not None
    given = dict(row)
    first = PROJECTION.apply(given, later, KEY, PHONES)
    assert given == row
    assert PROJECTION.apply(given, later, KEY, PHONES) == first
    assert PROJECTION.apply(None, later, KEY, PHONES) == PROJECTION.apply(None, later, KEY, PHONES)
