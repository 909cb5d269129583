"""The `sms` projection as pure functions: one row per (org_id, sms_id), the latest event's values."""

from __future__ import annotations

import itertools
import uuid

import pytest

from projections.model import Event, row_id
from projections.sms import PROJECTION
from service.core.phones import PhoneBook
from tests.support.events import NO_PHONES, ORG, OTHER_ORG, event, fold, moment

TABLE = "mightycall_sms_messages"
PHONE_ID = uuid.UUID("5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d")
PHONES = PhoneBook(default_region="US", ids={(ORG, "+12125551234"): PHONE_ID})
KEY = (ORG, "sms_12345")


def test_keys_are_the_org_and_sms_id() -> None:
    assert PROJECTION.keys(event("sms", 1)) == [(ORG, "sms_12345")]
    assert PROJECTION.keys(event("sms", 1, org_id=OTHER_ORG, sms_id="sms_9")) == [(OTHER_ORG, "sms_9")]


def test_first_event_makes_the_row_from_the_payload() -> None:
    row = PROJECTION.apply(None, event("sms", 7), KEY, PHONES)
    assert row == {
        "id": row_id(TABLE, ORG, "sms_12345"),
        "org_id": ORG,
        "sms_id": "sms_12345",
        "phone_number": "+12125551234",
        "phone_number_id": PHONE_ID,
        "direction": "inbound",
        "sender": "+14155555678",
        "recipient": "+12125551234",
        "message": "Hi, I have a question about my order",
        "status": "received",
        "message_date": moment(0),
        "event_id": 7,
    }
    assert set(row) == set(PROJECTION.table.columns)


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
    row = PROJECTION.apply(None, event("sms", first[1], at=first[0], status="queued"), KEY, NO_PHONES)
    assert row is not None
    later = event("sms", second[1], at=second[0], status="delivered", message="edited")
    result = PROJECTION.apply(row, later, KEY, NO_PHONES)
    if replaces:
        assert result == PROJECTION.apply(None, later, KEY, NO_PHONES)
        assert result is not None
        assert (result["status"], result["message"], result["event_id"]) == ("delivered", "edited", second[1])
        assert result["message_date"] == moment(second[0])
    else:
        assert result is None


def test_a_redelivery_further_down_the_log_changes_only_the_event_id() -> None:
    row = PROJECTION.apply(None, event("sms", 4), KEY, PHONES)
    assert row is not None
    assert PROJECTION.apply(row, event("sms", 9), KEY, PHONES) == {**row, "event_id": 9}
    assert PROJECTION.apply(row, event("sms", 4), KEY, PHONES) is None


# (seconds, event id, status): ids deliberately out of step with timestamps; the last set has ties.
HISTORIES = [
    pytest.param([(0, 4, "queued"), (10, 2, "sent"), (20, 1, "delivered"), (5, 3, "sending")], id="distinct"),
    pytest.param([(10, 4, "queued"), (10, 2, "sent"), (20, 1, "delivered"), (20, 3, "failed")], id="ties"),
]


@pytest.mark.parametrize("history", HISTORIES)
def test_any_delivery_order_ends_with_the_latest_event_alone(history: list[tuple[int, int, str]]) -> None:
    events = [
        event("sms", event_id, at=at, status=status, message=status) for at, event_id, status in history
    ]
    latest = max(events, key=lambda each: (each.payload.timestamp, each.id))
    expected = PROJECTION.apply(None, latest, KEY, PHONES)
    for order in itertools.permutations(events):
        assert fold(PROJECTION, order, KEY, PHONES) == expected


def test_every_row_names_the_event_that_last_changed_it() -> None:
    row = fold(PROJECTION, [event("sms", 3, at=0), event("sms", 8, at=5), event("sms", 6, at=1)], KEY)
    assert row is not None
    assert row["event_id"] == 8


@pytest.mark.parametrize(
    "number", ["+12125551234", "(212) 555-1234", "212.555.1234", "+1 212 555 1234", "1-212-555-1234"]
)
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = PROJECTION.apply(None, event("sms", 1, phone_number=number), KEY, PHONES)
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
    key = (org_id, "sms_12345")
    row = PROJECTION.apply(None, event("sms", 1, org_id=org_id, phone_number=number), key, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (number, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(event("sms", 1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]


def test_row_ids_derive_from_the_natural_key() -> None:
    def row_for(org_id: uuid.UUID, sms_id: str, event_id: int) -> uuid.UUID:
        row = PROJECTION.apply(
            None, event("sms", event_id, org_id=org_id, sms_id=sms_id), (org_id, sms_id), PHONES
        )
        assert row is not None
        return row["id"]

    assert row_for(ORG, "sms_1", 1) == row_for(ORG, "sms_1", 2) == row_id(TABLE, ORG, "sms_1")
    ids = {row_for(ORG, "sms_1", 1), row_for(ORG, "sms_2", 1), row_for(OTHER_ORG, "sms_1", 1)}
    assert len(ids) == 3
    assert row_id(TABLE, ORG, "sms_1") != row_id("calls", ORG, "sms_1")


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(event("sms", 9, at=60, status="delivered"), id="replacing"),
        pytest.param(event("sms", 2, at=-60, status="delivered"), id="ignored"),
    ],
)
def test_apply_is_pure(later: Event) -> None:
    row = PROJECTION.apply(None, event("sms", 5), KEY, PHONES)
    assert row is not None
    given = dict(row)
    first = PROJECTION.apply(given, later, KEY, PHONES)
    assert given == row
    assert PROJECTION.apply(given, later, KEY, PHONES) == first
    assert PROJECTION.apply(None, later, KEY, PHONES) == PROJECTION.apply(None, later, KEY, PHONES)
