"""The `recordings` projection as pure functions: one row per (org_id, call_id, url), fed by call webhooks
that announce a recording and by recording webhooks that describe it, in either order.

The row keeps the latest call webhook (call_*) and the latest recording webhook (recording_*, with
recording_id, format and size_bytes) side by side, each "latest" by (payload timestamp, event id). The
visible phone_number and duration are the recording webhook's where it gave them, else the call's; so the
row never depends on the order of arrival, except `created_at` (the first event's timestamp) and
`event_id` (the last event that changed the row)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import msgspec
import pytest

from projections.model import Event, Row, row_id
from projections.recordings import PROJECTION
from service.core.payloads import RecordingPayload
from service.core.phones import PhoneBook
from tests.support.events import NO_PHONES, ORG, OTHER_ORG, event, fold, moment
from tests.support.payloads import DROP

TABLE = "mightycall_recordings"
URL = "https://mightycall.com/recordings/rec_12345.mp3"
KEY = (ORG, "call_12345", URL)
CALL_PHONE, RECORDING_PHONE, NEW_CALL_PHONE = "+12125551234", "+12125550000", "+14155550000"
CALL_PHONE_ID = uuid.UUID("1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b")
RECORDING_PHONE_ID = uuid.UUID("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d")
NEW_CALL_PHONE_ID = uuid.UUID("5c4b3a29-1807-4f6e-8d5c-4b3a29180716")
PHONES = PhoneBook(
    default_region="US",
    ids={
        (ORG, CALL_PHONE): CALL_PHONE_ID,
        (ORG, RECORDING_PHONE): RECORDING_PHONE_ID,
        (ORG, NEW_CALL_PHONE): NEW_CALL_PHONE_ID,
    },
)
VISIBLE = ("phone_number", "phone_number_id", "duration")
RECORDING_ONLY = ("recording_id", "format", "size_bytes")
CALL_SOURCE = ("call_timestamp", "call_event_id", "call_phone_number", "call_duration")
RECORDING_SOURCE = (
    "recording_timestamp",
    "recording_event_id",
    "recording_phone_number",
    "recording_duration",
)
HISTORY = ("created_at", "event_id")


def call(event_id: int, at: int = 0, **changes: Any) -> Event:
    return event("calls", event_id, at=at, **{"phone_number": CALL_PHONE, "duration": 180, **changes})


def recording(event_id: int, at: int = 30, **changes: Any) -> Event:
    return event(
        "recordings", event_id, at=at, **{"phone_number": RECORDING_PHONE, "duration": 175, **changes}
    )


def applied(row: Row | None, each: Event) -> Row:
    result = PROJECTION.apply(None if row is None else dict(row), each, KEY, PHONES)
    assert result is not None
    return result


def pick(row: Row, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: row[name] for name in names}


def without_history(row: Row) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in HISTORY}


def is_recording(each: Event) -> bool:
    return isinstance(each.payload, RecordingPayload)


def newness(each: Event) -> tuple[Any, int]:
    return (each.payload.timestamp, each.id)


# Keys -------------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("kind", ["sms", "reports"])
def test_other_kinds_name_no_recording(kind: str) -> None:
    assert PROJECTION.kinds == frozenset({"calls", "recordings"})
    assert PROJECTION.keys(event(kind, 1)) == []


# The first event of a row ------------------------------------------------------------------------------


def test_a_call_alone_announces_the_recording_with_what_it_knows() -> None:
    row = PROJECTION.apply(None, call(4), KEY, PHONES)
    assert row == {
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
        "call_timestamp": moment(0),
        "call_event_id": 4,
        "call_phone_number": CALL_PHONE,
        "call_duration": 180,
        "recording_timestamp": None,
        "recording_event_id": None,
        "recording_phone_number": None,
        "recording_duration": None,
    }
    assert row is not None
    assert set(row) == set(PROJECTION.table.columns)


def test_a_call_without_a_duration_announces_no_duration() -> None:
    row = applied(None, call(4, duration=DROP))
    assert (row["duration"], row["call_duration"]) == (None, None)


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
        "call_timestamp": None,
        "call_event_id": None,
        "call_phone_number": None,
        "call_duration": None,
        "recording_timestamp": moment(30),
        "recording_event_id": 5,
        "recording_phone_number": RECORDING_PHONE,
        "recording_duration": 175,
    }
    assert row is not None
    assert set(row) == set(PROJECTION.table.columns)


def test_a_bare_recording_webhook_leaves_what_it_did_not_say_empty() -> None:
    row = applied(None, recording(5, phone_number=DROP, duration=DROP, format=DROP, size_bytes=DROP))
    assert pick(row, (*VISIBLE, *RECORDING_ONLY, "recording_phone_number", "recording_duration")) == {
        "phone_number": None,
        "phone_number_id": None,
        "duration": None,
        "recording_id": "rec_12345",
        "format": None,
        "size_bytes": None,
        "recording_phone_number": None,
        "recording_duration": None,
    }
    assert pick(row, ("recording_timestamp", "recording_event_id")) == {
        "recording_timestamp": moment(30),
        "recording_event_id": 5,
    }


# Both sources on one row -------------------------------------------------------------------------------

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
    # Each source moves on its own: the call applies even when it is older than the recording webhook.
    recording_first = applied(applied(None, the_recording), the_call)

    gave_phone, gave_duration = "phone_number" not in changes, "duration" not in changes
    expected = {
        "id": row_id(TABLE, *KEY),
        "org_id": ORG,
        "call_id": "call_12345",
        "url": URL,
        "recording_id": "rec_12345",
        "phone_number": RECORDING_PHONE if gave_phone else CALL_PHONE,
        "phone_number_id": RECORDING_PHONE_ID if gave_phone else CALL_PHONE_ID,
        "duration": 175 if gave_duration else 180,
        "format": "mp3",
        "size_bytes": 2890000,
        "call_timestamp": moment(call_at),
        "call_event_id": 1,
        "call_phone_number": CALL_PHONE,
        "call_duration": 180,
        "recording_timestamp": moment(recording_at),
        "recording_event_id": 2,
        "recording_phone_number": RECORDING_PHONE if gave_phone else None,
        "recording_duration": 175 if gave_duration else None,
    }
    assert call_first == {**expected, "created_at": moment(call_at), "event_id": 2}
    assert recording_first == {**expected, "created_at": moment(recording_at), "event_id": 1}


@pytest.mark.parametrize("history", ["recording", "call-then-recording", "recording-then-call"])
def test_a_newer_call_does_not_override_what_the_recording_webhook_gave(history: str) -> None:
    events = {
        "recording": [recording(2)],
        "call-then-recording": [call(1), recording(2)],
        "recording-then-call": [recording(2), call(1)],
    }[history]
    row = fold(PROJECTION, events, KEY, PHONES)
    assert row is not None
    later_call = call(9, at=3600, phone_number=NEW_CALL_PHONE, duration=999)
    result = applied(row, later_call)
    # The call's own columns move on, and the row records the event that changed it...
    assert pick(result, CALL_SOURCE) == {
        "call_timestamp": moment(3600),
        "call_event_id": 9,
        "call_phone_number": NEW_CALL_PHONE,
        "call_duration": 999,
    }
    assert result["event_id"] == 9
    # ...but what shows is still the recording webhook's.
    assert pick(result, (*VISIBLE, *RECORDING_ONLY)) == {
        "phone_number": RECORDING_PHONE,
        "phone_number_id": RECORDING_PHONE_ID,
        "duration": 175,
        "recording_id": "rec_12345",
        "format": "mp3",
        "size_bytes": 2890000,
    }
    assert {**result, **pick(row, (*CALL_SOURCE, "event_id"))} == row


def test_a_zero_duration_from_the_recording_webhook_is_a_duration() -> None:
    the_call, the_recording = call(1, duration=100), recording(2, duration=0)
    for events in ([the_call, the_recording], [the_recording, the_call]):
        row = fold(PROJECTION, events, KEY, PHONES)
        assert row is not None
        assert (row["duration"], row["recording_duration"], row["call_duration"]) == (0, 0, 100)


def test_an_empty_phone_number_from_the_recording_webhook_shows_the_calls() -> None:
    # The decoder refuses an empty phone_number; the projection still treats one as no number.
    the_recording = recording(2)
    assert isinstance(the_recording.payload, RecordingPayload)
    empty = Event(
        id=2,
        kind="recordings",
        org_id=ORG,
        payload=msgspec.structs.replace(the_recording.payload, phone_number=""),
    )
    for events in ([call(1), empty], [empty, call(1)]):
        row = fold(PROJECTION, events, KEY, PHONES)
        assert row is not None
        assert pick(row, ("recording_phone_number", *VISIBLE)) == {
            "recording_phone_number": "",
            "phone_number": CALL_PHONE,
            "phone_number_id": CALL_PHONE_ID,
            "duration": 175,
        }


FALLBACKS = [
    pytest.param({"phone_number": DROP}, CALL_PHONE, 175, NEW_CALL_PHONE, 175, id="without-phone"),
    pytest.param({"duration": DROP}, RECORDING_PHONE, 180, RECORDING_PHONE, 999, id="without-duration"),
    pytest.param(
        {"phone_number": DROP, "duration": DROP}, CALL_PHONE, 180, NEW_CALL_PHONE, 999, id="without-either"
    ),
    pytest.param({}, RECORDING_PHONE, 175, RECORDING_PHONE, 175, id="complete"),
]


@pytest.mark.parametrize(
    ("changes", "phone_before", "duration_before", "phone_after", "duration_after"), FALLBACKS
)
def test_a_newer_calls_values_show_where_the_recording_webhook_left_them_empty(
    changes: dict[str, Any], phone_before: str, duration_before: int, phone_after: str, duration_after: int
) -> None:
    ids = {CALL_PHONE: CALL_PHONE_ID, RECORDING_PHONE: RECORDING_PHONE_ID, NEW_CALL_PHONE: NEW_CALL_PHONE_ID}
    row = fold(PROJECTION, [call(1, at=0), recording(2, at=10, **changes)], KEY, PHONES)
    assert row is not None
    assert pick(row, VISIBLE) == {
        "phone_number": phone_before,
        "phone_number_id": ids[phone_before],
        "duration": duration_before,
    }
    result = applied(row, call(3, at=20, phone_number=NEW_CALL_PHONE, duration=999))
    assert pick(result, VISIBLE) == {
        "phone_number": phone_after,
        "phone_number_id": ids[phone_after],
        "duration": duration_after,
    }
    assert (result["call_event_id"], result["event_id"], result["recording_event_id"]) == (3, 3, 2)


@pytest.mark.parametrize("recording_first", [False, True], ids=["call-first", "recording-first"])
def test_an_older_call_never_replaces_a_newer_calls_values_even_beside_a_recording(
    recording_first: bool,
) -> None:
    newer, older = call(2, at=50, phone_number=NEW_CALL_PHONE, duration=300), call(4, at=0, duration=100)
    bare = recording(1, at=20, phone_number=DROP, duration=DROP)
    row = fold(PROJECTION, [bare, newer] if recording_first else [newer, bare], KEY, PHONES)
    assert row is not None
    assert PROJECTION.apply(dict(row), older, KEY, PHONES) is None
    assert pick(row, (*VISIBLE, "call_event_id", "call_duration")) == {
        "phone_number": NEW_CALL_PHONE,
        "phone_number_id": NEW_CALL_PHONE_ID,
        "duration": 300,
        "call_event_id": 2,
        "call_duration": 300,
    }


def test_an_older_recording_webhook_changes_nothing_even_where_the_newer_one_left_fields_empty() -> None:
    row = applied(None, recording(5, at=60, format=DROP, size_bytes=DROP, phone_number=DROP, duration=DROP))
    older = recording(3, at=0, format="wav", size_bytes=10, duration=90)
    assert PROJECTION.apply(dict(row), older, KEY, PHONES) is None
    row = applied(row, call(1, at=0))
    assert PROJECTION.apply(dict(row), older, KEY, PHONES) is None
    assert pick(row, (*VISIBLE, "format", "size_bytes", "recording_event_id")) == {
        "phone_number": CALL_PHONE,
        "phone_number_id": CALL_PHONE_ID,
        "duration": 180,
        "format": None,
        "size_bytes": None,
        "recording_event_id": 5,
    }


def test_created_at_is_the_first_events_timestamp_even_when_later_events_are_older() -> None:
    row = applied(None, call(7, at=90))
    for each in (recording(2, at=10), call(9, at=120), recording(1, at=60)):
        row = applied(row, each)
        assert row["created_at"] == moment(90)
        assert row["event_id"] == each.id


# Ordering within each source ---------------------------------------------------------------------------

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
def test_within_a_source_a_row_never_moves_backwards(
    make: Any, first: tuple[int, int], second: tuple[int, int], replaces: bool
) -> None:
    row = applied(None, make(first[1], at=first[0], duration=100))
    later = make(second[1], at=second[0], duration=200)
    result = PROJECTION.apply(dict(row), later, KEY, PHONES)
    if not replaces:
        assert result is None
        return
    name = "recording" if make is recording else "call"
    assert result == {
        **row,
        "duration": 200,
        "event_id": second[1],
        f"{name}_duration": 200,
        f"{name}_timestamp": moment(second[0]),
        f"{name}_event_id": second[1],
    }
    assert result["created_at"] == moment(first[0])


@pytest.mark.parametrize(("first", "second", "replaces"), ORDERINGS)
def test_each_source_is_ordered_only_against_itself(
    first: tuple[int, int], second: tuple[int, int], replaces: bool
) -> None:
    # A newer recording webhook sits on the row; calls are still ordered by the latest call only.
    row = applied(applied(None, call(first[1], at=first[0])), recording(50, at=3600))
    result = PROJECTION.apply(dict(row), call(second[1], at=second[0], duration=200), KEY, PHONES)
    if replaces:
        assert result is not None
        assert (result["call_event_id"], result["call_duration"], result["event_id"]) == (
            second[1],
            200,
            second[1],
        )
        assert pick(result, RECORDING_SOURCE) == pick(row, RECORDING_SOURCE)
    else:
        assert result is None


@pytest.mark.parametrize("make", [call, recording], ids=["calls", "recordings"])
@pytest.mark.parametrize("event_id", [2, 4, 9])
def test_a_redelivery_changes_only_the_event_ids_or_nothing(make: Any, event_id: int) -> None:
    name = "recording" if make is recording else "call"
    row = applied(None, make(4))
    result = PROJECTION.apply(dict(row), make(event_id), KEY, PHONES)
    if event_id > 4:
        assert result == {**row, "event_id": event_id, f"{name}_event_id": event_id}
    else:
        assert result is None


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([call(1)], id="call"),
        pytest.param([recording(2)], id="recording"),
        pytest.param([call(1), recording(2)], id="call-then-recording"),
        pytest.param([recording(2, duration=DROP), call(1)], id="partial-recording-then-call"),
        pytest.param([call(3, at=50), recording(2), call(1, at=0)], id="with-an-older-call"),
    ],
)
def test_reapplying_an_event_changes_nothing(events: list[Event]) -> None:
    row = fold(PROJECTION, events, KEY, PHONES)
    assert row is not None
    for each in events:
        assert PROJECTION.apply(dict(row), each, KEY, PHONES) is None


# Arrival order never matters ---------------------------------------------------------------------------

# Within each source the older event has the higher id, and across sources ids interleave otherwise than
# timestamps do, so that ordering by id, by timestamp or by arrival would each give another row.
OLD_CALL = call(4, at=0, phone_number=CALL_PHONE, duration=100)
NEW_CALL = call(2, at=50, phone_number=NEW_CALL_PHONE, duration=300)
OLD_RECORDING = recording(
    3, at=20, recording_id="rec_old", phone_number=RECORDING_PHONE, duration=170, format="mp3", size_bytes=20
)


def new_recording(**changes: Any) -> Event:
    return recording(1, at=40, **{"recording_id": "rec_new", "format": "wav", "size_bytes": 10, **changes})


PERMUTED = [
    pytest.param(
        {"phone_number": RECORDING_PHONE, "duration": 175},
        (RECORDING_PHONE, RECORDING_PHONE_ID, 175),
        id="recording-gives-both",
    ),
    pytest.param(
        {"phone_number": DROP, "duration": 175},
        (NEW_CALL_PHONE, NEW_CALL_PHONE_ID, 175),
        id="recording-gives-duration",
    ),
    pytest.param(
        {"phone_number": RECORDING_PHONE, "duration": DROP},
        (RECORDING_PHONE, RECORDING_PHONE_ID, 300),
        id="recording-gives-phone",
    ),
    pytest.param(
        {"phone_number": None, "duration": None},
        (NEW_CALL_PHONE, NEW_CALL_PHONE_ID, 300),
        id="recording-gives-neither",
    ),
    pytest.param(
        {"phone_number": CALL_PHONE, "duration": 0}, (CALL_PHONE, CALL_PHONE_ID, 0), id="recording-gives-zero"
    ),
]


def fold_checking_each_step(order: tuple[Event, ...]) -> tuple[Row | None, int | None]:
    """Fold `order` from no row, asserting that an event applies exactly when it is newer (by timestamp,
    then id) than every earlier event of its own source; the row, and the id of the last event applied."""
    row: Row | None = None
    latest: dict[bool, tuple[Any, int]] = {}
    last_applied: int | None = None
    for each in order:
        given = None if row is None else dict(row)
        result = PROJECTION.apply(given, each, KEY, PHONES)
        source = is_recording(each)
        expected_to_apply = source not in latest or newness(each) > latest[source]
        assert (result is not None) == expected_to_apply, (each.id, [e.id for e in order])
        assert given == row
        if result is not None:
            latest[source] = newness(each)
            row, last_applied = result, each.id
    return row, last_applied


@pytest.mark.parametrize(("changes", "visible"), PERMUTED)
def test_any_delivery_order_reaches_the_same_row(
    changes: dict[str, Any], visible: tuple[str, uuid.UUID, int]
) -> None:
    events = [OLD_CALL, NEW_CALL, OLD_RECORDING, new_recording(**changes)]
    for source in (False, True):
        mine = [each for each in events if is_recording(each) == source]
        assert sorted(mine, key=lambda each: each.id) != sorted(mine, key=newness)
    phone, phone_id, duration = visible
    expected = {
        "id": row_id(TABLE, *KEY),
        "org_id": ORG,
        "call_id": "call_12345",
        "url": URL,
        "recording_id": "rec_new",
        "phone_number": phone,
        "phone_number_id": phone_id,
        "duration": duration,
        "format": "wav",
        "size_bytes": 10,
        "call_timestamp": moment(50),
        "call_event_id": 2,
        "call_phone_number": NEW_CALL_PHONE,
        "call_duration": 300,
        "recording_timestamp": moment(40),
        "recording_event_id": 1,
        # The newest recording webhook's, even empty: an older one's values never show through.
        "recording_phone_number": changes["phone_number"] if changes["phone_number"] is not DROP else None,
        "recording_duration": changes["duration"] if changes["duration"] is not DROP else None,
    }
    event_ids = set()
    for order in itertools.permutations(events):
        row, last_applied = fold_checking_each_step(order)
        assert row == {**expected, "created_at": order[0].payload.timestamp, "event_id": last_applied}
        assert fold(PROJECTION, order, KEY, PHONES) == row
        event_ids.add(last_applied)
    # The last event that changed the row depends on the order, the row's values do not; an older event
    # arriving last changes nothing, so it is always the newest of one source or the other.
    assert event_ids == {NEW_CALL.id, events[-1].id} == {2, 1}


@pytest.mark.parametrize(
    ("recording_changes", "phone", "phone_id"),
    [
        pytest.param({"phone_number": DROP}, NEW_CALL_PHONE, NEW_CALL_PHONE_ID, id="recording-without-phone"),
        pytest.param({}, RECORDING_PHONE, RECORDING_PHONE_ID, id="recording-with-phone"),
    ],
)
def test_the_newest_call_shows_through_a_recording_without_duration_in_every_order(
    recording_changes: dict[str, Any], phone: str, phone_id: uuid.UUID
) -> None:
    call_a = call(1, at=0, phone_number=CALL_PHONE, duration=100)
    the_recording = recording(2, at=10, duration=DROP, **recording_changes)
    call_b = call(3, at=20, phone_number=NEW_CALL_PHONE, duration=200)
    rows = []
    for order in itertools.permutations([call_a, the_recording, call_b]):
        row, last_applied = fold_checking_each_step(order)
        assert row is not None
        assert pick(row, (*VISIBLE, "call_event_id", "call_duration", "recording_duration")) == {
            "phone_number": phone,
            "phone_number_id": phone_id,
            "duration": 200,
            "call_event_id": 3,
            "call_duration": 200,
            "recording_duration": None,
        }
        assert (row["created_at"], row["event_id"]) == (order[0].payload.timestamp, last_applied)
        rows.append(without_history(row))
    assert all(row == rows[0] for row in rows)


# Phone numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+12125550000", "(212) 555-0000", "212.555.0000", "+1 212 555 0000"])
def test_the_phone_number_matches_the_organizations_number_in_any_format(number: str) -> None:
    row = applied(None, recording(1, phone_number=number))
    assert (row["phone_number"], row["phone_number_id"]) == (number, RECORDING_PHONE_ID)


@pytest.mark.parametrize("number", ["+14155550000", "(415) 555-0000", "415-555-0000"])
def test_a_calls_number_shown_through_matches_in_any_format(number: str) -> None:
    row = fold(PROJECTION, [recording(1, phone_number=DROP), call(2, phone_number=number)], KEY, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (number, NEW_CALL_PHONE_ID)


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


@pytest.mark.parametrize(
    ("events", "phone", "phone_id"),
    [
        pytest.param([call(1)], CALL_PHONE, CALL_PHONE_ID, id="call"),
        pytest.param([call(1), recording(2)], RECORDING_PHONE, RECORDING_PHONE_ID, id="recording-gives-one"),
        pytest.param(
            [call(1), recording(2, phone_number=DROP)], CALL_PHONE, CALL_PHONE_ID, id="recording-gives-none"
        ),
        pytest.param(
            [recording(2, phone_number=DROP), call(1), call(3, at=60, phone_number=NEW_CALL_PHONE)],
            NEW_CALL_PHONE,
            NEW_CALL_PHONE_ID,
            id="newer-call-shows-through",
        ),
        pytest.param(
            [recording(2), call(1), call(3, at=60, phone_number=NEW_CALL_PHONE)],
            RECORDING_PHONE,
            RECORDING_PHONE_ID,
            id="newer-call-hidden",
        ),
        pytest.param(
            [recording(2, phone_number=DROP), call(1, phone_number="+12125559999")],
            "+12125559999",
            None,
            id="unknown-call-number",
        ),
        pytest.param(
            [call(1, phone_number="+12125559999"), recording(2)],
            RECORDING_PHONE,
            RECORDING_PHONE_ID,
            id="recording-number-known",
        ),
    ],
)
def test_the_phone_number_id_follows_the_visible_number(
    events: list[Event], phone: str, phone_id: uuid.UUID | None
) -> None:
    row = fold(PROJECTION, events, KEY, PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (phone, phone_id)
    row = fold(PROJECTION, events, KEY, NO_PHONES)
    assert row is not None
    assert (row["phone_number"], row["phone_number_id"]) == (phone, None)


def test_the_numbers_an_event_mentions_are_its_phone_number() -> None:
    assert PROJECTION.phone_numbers(call(1, phone_number="(212) 555-1234")) == ["(212) 555-1234"]
    assert PROJECTION.phone_numbers(recording(1, phone_number="212.555.0000")) == ["212.555.0000"]
    assert PROJECTION.phone_numbers(recording(1, phone_number=DROP)) == [None]


# Ids and purity ----------------------------------------------------------------------------------------


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
        pytest.param(recording(2), call(1), id="call-beside-recording"),
        pytest.param(recording(2), recording(3, at=60, format="wav"), id="newer-recording"),
        pytest.param(call(5, at=60), call(6, at=90, duration=1), id="newer-call"),
        pytest.param(call(5, at=60), call(6, at=0), id="older-call"),
        pytest.param(recording(5, at=60), recording(6, at=0), id="older-recording"),
    ],
)
def test_apply_is_pure(first: Event, then: Event) -> None:
    row = applied(None, first)
    given = dict(row)
    result = PROJECTION.apply(given, then, KEY, PHONES)
    assert given == row
    assert result is not given
    assert PROJECTION.apply(given, then, KEY, PHONES) == result
    assert given == row
    assert PROJECTION.apply(None, then, KEY, PHONES) == PROJECTION.apply(None, then, KEY, PHONES)
