"""Row ids are uuid5 of the table and the natural key, encoded without ambiguity: the same key always
gets the same id, in the live table and in any rebuild, and distinct keys of a table get distinct ids
whatever characters they hold."""

from __future__ import annotations

import uuid

from asyncpg.pgproto.pgproto import UUID as AsyncpgUUID
from hypothesis import example, given
from hypothesis import strategies as st

from projections.model import row_id

ORG = uuid.UUID("3d0a6c1e-8f2b-4b7a-9e51-2c6d4f8a1b03")

# Computed once with the standard library's uuid.uuid5 from the encoding below, not by the code under
# test: a change of encoding gives every existing row a new id, and must be a deliberate one (with a
# version bump of every projection).
PINNED = [
    (("calls", ORG, "call_12345"), "ca2384d2-6b5e-58d2-9cb0-5f3c06e88870"),
    (("mightycall_sms_messages", ORG, "sms_12345"), "51759b42-0971-5c83-99eb-48da60b6d52f"),
    (
        ("mightycall_recordings", ORG, "call_12345", "https://mightycall.com/recordings/rec_12345.mp3"),
        "bf43676d-4cd4-563d-9249-d43a7e283abd",
    ),
    (("mightycall_reports", ORG, "rep_12345", "calls_total"), "82e44fe9-b81b-5621-bb1c-d2672f5ac4f5"),
    (("mightycall_recordings", ORG, "a\x1fb", "c"), "73c40e38-a1d2-5e68-ba31-816cdfd0177c"),
    (("mightycall_recordings", ORG, "a", "b\x1fc"), "2f813e6c-919e-5e0d-8b64-8e6e4f97a825"),
]


def test_pinned_ids_do_not_change() -> None:
    assert [str(row_id(*key)) for key, _ in PINNED] == [expected for _, expected in PINNED]


def test_the_id_is_uuid5_of_the_parts_lengths_then_the_parts() -> None:
    name = "calls" + str(ORG) + "call_12345"
    assert row_id("calls", ORG, "call_12345") == uuid.uuid5(
        uuid.UUID("6f1e7a52-3c59-4b5e-9d0c-8a1f0e4b2d11"), f"5 36 10\x1f{name}"
    )


# Any text: separators, control characters, digits and spaces (what the lengths are written in), NUL,
# non-ASCII, lone surrogates.
parts = st.text(alphabet=st.sampled_from("a1 :\x1f\x00\x01\n\u00e9\ud800") | st.characters(), max_size=6)
keys = st.tuples(st.uuids(), parts, parts)


@given(
    table=st.sampled_from(["mightycall_recordings", "mightycall_reports"]),
    org=st.uuids(),
    first=st.tuples(parts, parts),
    second=st.tuples(parts, parts),
)
@example(table="mightycall_recordings", org=ORG, first=("a\x1fb", "c"), second=("a", "b\x1fc"))
@example(table="mightycall_recordings", org=ORG, first=("1 1", "a"), second=("1", " 1a"))
def test_distinct_keys_get_distinct_ids(
    table: str, org: uuid.UUID, first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert (row_id(table, org, *first) == row_id(table, org, *second)) == (first == second)


@given(key=keys)
def test_ids_are_rfc_4122_version_5(key: tuple[object, ...]) -> None:
    found = row_id("mightycall_recordings", *key)
    assert (found.version, found.variant) == (5, uuid.RFC_4122)
    assert found == uuid.UUID(str(found))
    assert hash(found) == hash(uuid.UUID(str(found)))


def test_the_same_key_in_another_table_is_another_id() -> None:
    assert row_id("calls", ORG, "x") != row_id("mightycall_sms_messages", ORG, "x")


def test_an_org_id_read_from_the_database_gives_the_same_id_as_a_uuid() -> None:
    org = uuid.UUID("0b7e2a9c-4a51-4f0e-9a43-1d2f8e6c7b10")

    assert row_id("calls", AsyncpgUUID(org.bytes), "call_1") == row_id("calls", org, "call_1")
