"""The `recordings` projection as pure functions: one row per (org_id, call_id, url), fed by call webhooks
that announce a recording and by recording webhooks that describe it, in either order."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from projections.model import Event, Row, row_id
from projections.phones import PhoneBook
from projections.recordings import PROJECTION
from tests.support.events import NO_PHONES, ORG, OTHER_ORG, event, fold, moment
from tests.support.payloads import DROP

TABLE = "mightycall_recordings"
URL = "https://mightycall.com/recordings/rec_12345.mp3"
KEY = (ORG, "call_12345", URL)
CALL_PHONE, RECORDING_PHONE = "+12125551234", "+12125550000"
CALL_PHONE_ID = uuid.UUID("1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b")
RECORDING_PHONE_ID = uuid.UUID("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d")
PHONES = PhoneBook(
    default_region="US", ids={(ORG, CALL_PHONE): CALL_PHONE_ID, (ORG, RECORDING_PHONE): RECORDING_PHONE_ID}
)
VALUES = ("recording_id", "phone_number", "phone_number_id", "duration", "format", "size_bytes")


def call(event_id: int, at: int = 0, **changes: Any) -> Event:
    return event("calls", event_id, at=at, **{"phone_number": CALL_PHONE, "duration": 180, **changes})


def recording(event_id: int, at: int = 30, **changes: Any) -> Event:
    return event(
        "recordings", event_id, at=at, **{"phone_number": RECORDING_PHONE, "duration": 175, **changes}
    )


def applied(row: Row | None, each: Event) -> Row:
    result = PROJECTION.apply(row, each, KEY, PHONES)
    assert result is not None
    return result


def test_a_call_with_a_recording_url_names_the_recording() -> None:
    assert PROJECTION.keys(call(1)) == [KEY]
    assert PROJECTION.keys(call(1, org_id=OTHER_ORG, call_id="call_9", recording_url="https://x/9.wav")) == [
        (OTHER_ORG, "call_9", "https://x/9.wav")
    ]


@pytest.mark.parametrize("url", [None, DROP, ""])
def test_a_call_without_a_recording_url_names_no_recording(url: object) -> None:
    assert PROJECTION.keys(call(1, recording_url=url)) == []


def test_a_recording_webhook_lands_on_the_key_its_call_announced() -> None:
    assert PROJECTION.keys(recording(2)) == PROJECTION.keys(call(1)) == [KEY]
    assert PROJECTION.keys(recording(2, url="https://x/other.mp3")) == [
        (ORG, "call_12345", "https://x/other.mp3")
    ]


def test_a_call_alone_announces_the_recording_with_what_it_knows() -> None:
    assert PROJECTION.apply(None, call(4), KEY, PHONES) == {
        "id": row_id(TABLE, *KEY),
        "org_id": ORG,
        "call_id": "call_12345",
        "url": URL,
        "recording_id": None,
        "phone_number": CALL_PHONE,
        "phone_number_id": CALL_PHONE_ID,
        "duration": 180,
        "format": None,
        "size_bytes": None,
        "created_at": moment(0),
        "event_id": 4,
        "source_rank": 0,
        "source_timestamp": moment(0),
        "source_event_id": 4,
    }


def test_a_recording_webhook_alone_describes_the_recording() -> None:
    row = PROJECTION.apply(None, recording(5), KEY, PHONES)
    assert row == {
        "id": row_id(TABLE, *KEY),
        "org_id": ORG,
        "call_id": "call_12345",
        "url": URL,
        "recording_id": "rec_12345",
        "phone_number": RECORDING_PHONE,
        "phone_number_id": RECORDING_PHONE_ID,
        "duration": 175,
        "format": "mp3",
        "size_bytes": 2890000,
        "created_at": moment(30),
        "event_id": 5,
        "source_rank": 1,
        "source_timestamp": moment(30),
        "source_event_id": 5,
    }
    assert set(row) == set(PROJECTION.table.columns)


RECORDING_VARIANTS = [
    pytest.param({}, id="complete"),
    pytest.param({"phone_number": DROP}, id="without-phone"),
    pytest.param({"duration": DROP}, id="without-duration"),
    pytest.param({"phone_number": None, "duration": None}, id="without-either"),
]
TIMINGS = [pytest.param(0, 30, id="call-earlier"), pytest.param(30, 0, id="call-later")]


@pytest.mark.parametrize(("call_at", "recording_at"), TIMINGS)
@pytest.mark.parametrize("changes", RECORDING_VARIANTS)
def test_call_and_recording_webhooks_complete_one_row_in_either_order(
    changes: dict[str, Any], call_at: int, recording_at: int
) -> None:
    the_call, the_recording = call(1, at=call_at), recording(2, at=recording_at, **changes)
    call_first = applied(applied(None, the_call), the_recording)
    after_recording = applied(None, the_recording)
    recording_first = PROJECTION.apply(after_recording, the_call, KEY, PHONES) or after_recording

    gave_phone, gave_duration = "phone_number" not in changes, "duration" not in changes
    expected = {
        "recording_id": "rec_12345",
        "phone_number": RECORDING_PHONE if gave_phone else CALL_PHONE,
        "phone_number_id": RECORDING_PHONE_ID if gave_phone else CALL_PHONE_ID,
        "duration": 175 if gave_duration else 180,
        "format": "mp3",
        "size_bytes": 2890000,
    }
    for row in (call_first, recording_first):
        assert {name: row[name] for name in VALUES} == expected
        assert (row["id"], row["source_rank"], row["source_event_id"]) == (row_id(TABLE, *KEY), 1, 2)
    assert call_first["created_at"] == moment(call_at)
    assert recording_first["created_at"] == moment(recording_at)
    assert call_first["event_id"] == 2
    # The call changes the recording's row only when it fills a field the recording webhook left empty.
    assert recording_first["event_id"] == (2 if gave_phone and gave_duration else 1)
    unequal = {"created_at", "event_id"}
    assert {k: v for k, v in call_first.items() if k not in unequal} == {
        k: v for k, v in recording_first.items() if k not in unequal
    }


@pytest.mark.parametrize("history", ["recording", "call-then-recording", "recording-then-call"])
def test_a_later_call_does_not_override_the_recording_webhook(history: str) -> None:
    events = {
        "recording": [recording(2)],
        "call-then-recording": [call(1), recording(2)],
        "recording-then-call": [recording(2), call(1)],
    }[history]
    row = fold(PROJECTION, events, KEY, PHONES)
    later_call = call(9, at=3600, phone_number="+14155550000", duration=999, recording_url=URL)
    assert PROJECTION.apply(row, later_call, KEY, PHONES) is None


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([call(1)], id="call"),
        pytest.param([recording(2)], id="recording"),
        pytest.param([call(1), recording(2)], id="call-then-recording"),
        pytest.param([recording(2, duration=DROP), call(1)], id="partial-recording-then-call"),
    ],
)
def test_reapplying_an_event_changes_nothing(events: list[Event]) -> None:
    row = fold(PROJECTION, events, KEY, PHONES)
    for each in events:
        assert PROJECTION.apply(row, each, KEY, PHONES) is None


# (seconds, event id) of the event that made the row, then of the next one of the same kind; whether it
# replaces the row's values.
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
@pytest.mark.parametrize("make", [call, recording], ids=["calls", "recordings"])
def test_within_a_kind_a_row_never_moves_backwards(
    make: Any, first: tuple[int, int], second: tuple[int, int], replaces: bool
) -> None:
    row = applied(None, make(first[1], at=first[0], duration=100))
    later = make(second[1], at=second[0], duration=200)
    result = PROJECTION.apply(row, later, KEY, PHONES)
    if replaces:
        assert result == {
            **row,
            "duration": 200,
            "event_id": second[1],
            "source_timestamp": moment(second[0]),
            "source_event_id": second[1],
        }
    else:
        assert result is None


def test_an_older_recording_webhook_fills_only_what_the_newer_one_left_empty() -> None:
    row = applied(None, recording(5, at=60, format=DROP, duration=175))
    result = applied(row, recording(3, at=0, format="wav", duration=90))
    assert (result["format"], result["duration"], result["event_id"]) == ("wav", 175, 3)
    assert (result["source_timestamp"], result["source_event_id"]) == (moment(60), 5)


@pytest.mark.parametrize("event_id", [2, 9])
def test_a_redelivery_changes_only_the_event_ids_or_nothing(event_id: int) -> None:
    row = applied(None, recording(4))
    result = PROJECTION.apply(row, recording(event_id), KEY, PHONES)
    if event_id > 4:
        assert result == {**row, "event_id": event_id, "source_event_id": event_id}
    else:
        assert result is None


def test_any_delivery_order_ends_with_the_latest_recording_webhooks_values() -> None:
    events = [
        call(4, at=50, duration=300, phone_number="+14155550000"),
        recording(1, at=40, recording_id="rec_new", duration=175, format="wav", size_bytes=10),
        recording(3, at=20, recording_id="rec_old", duration=170, format="mp3", size_bytes=20),
        call(2, at=0, duration=100),
    ]
    expected = applied(None, events[1])
    for order in itertools.permutations(events):
        row = fold(PROJECTION, order, KEY, PHONES)
        assert row is not None
        assert row == {**expected, "created_at": order[0].payload.timestamp, "event_id": row["event_id"]}
        assert row["event_id"] in {each.id for each in events}


@pytest.mark.parametrize("number", ["+12125550000", "(212) 555-0000", "212.555.0000", "+1 212 555 0000"])
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = applied(None, recording(1, phone_number=number))
    assert (row["phone_number"], row["phone_number_id"]) == (number, RECORDING_PHONE_ID)


@pytest.mark.parametrize(
    ("org_id", "number"),
    [
        pytest.param(OTHER_ORG, RECORDING_PHONE, id="another-org"),
        pytest.param(ORG, "+12125559999", id="unknown-number"),
        pytest.param(ORG, "abc", id="not-a-number"),
        pytest.param(ORG, None, id="no-number"),
    ],
)
def test_no_phone_number_id_without_a_match(org_id: uuid.UUID, number: str | None) -> None:
    key = (org_id, "call_12345", URL)
    row = PROJECTION.apply(None, recording(1, org_id=org_id, phone_number=number), key, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (number, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(call(1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]
    assert PROJECTION.phone_numbers(recording(1, phone_number="212.555.0000")) == ["212.555.0000"]
    assert PROJECTION.phone_numbers(recording(1, phone_number=DROP)) == [None]


def test_row_ids_derive_from_the_natural_key() -> None:
    def row_for(each: Event) -> uuid.UUID:
        (key,) = PROJECTION.keys(each)
        row = PROJECTION.apply(None, each, key, NO_PHONES)
        assert row is not None
        return row["id"]

    assert row_for(call(1)) == row_for(recording(2)) == row_for(recording(3, at=99)) == row_id(TABLE, *KEY)
    ids = {
        row_for(recording(1)),
        row_for(recording(1, url="https://x/other.mp3")),
        row_for(recording(1, call_id="call_2")),
        row_for(recording(1, org_id=OTHER_ORG)),
    }
    assert len(ids) == 4
    assert row_id(TABLE, *KEY) != row_id("calls", *KEY)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        pytest.param(call(1), recording(2), id="recording-completes-call"),
        pytest.param(recording(2, duration=DROP), call(1), id="call-fills-recording"),
        pytest.param(recording(2), call(1), id="call-ignored"),
        pytest.param(recording(2), recording(3, at=60, format="wav"), id="newer-recording"),
    ],
)
def test_apply_is_pure(first: Event, then: Event) -> None:
    row = applied(None, first)
    given = dict(row)
    result = PROJECTION.apply(given, then, KEY, PHONES)
    assert given == row
    assert PROJECTION.apply(given, then, KEY, PHONES) == result
    assert PROJECTION.apply(None, then, KEY, PHONES) == PROJECTION.apply(None, then, KEY, PHONES)
