"""Row ids are uuid5 of the table and the natural key: rows written before row_id was computed by hand
keep their ids in every later projection and rebuild."""

from __future__ import annotations

import uuid

from asyncpg.pgproto.pgproto import UUID as AsyncpgUUID
from hypothesis import given
from hypothesis import strategies as st

from projections.model import _NAMESPACE, row_id

keys = st.tuples(
    st.uuids(),
    st.text(),  # any text: NUL, surrogate-free non-ASCII, the separator itself
    st.one_of(st.none(), st.text(), st.integers()),
)


@given(table=st.sampled_from(["calls", "mightycall_recordings", "mightycall_reports"]), key=keys)
def test_row_id_is_uuid5_of_the_table_and_key(table: str, key: tuple[object, ...]) -> None:
    expected = uuid.uuid5(_NAMESPACE, "\x1f".join([table, *map(str, key)]))

    found = row_id(table, *key)

    assert found == expected
    assert hash(found) == hash(expected)
    assert str(found) == str(expected)
    assert found.version == 5
    assert found.variant == uuid.RFC_4122


def test_an_org_id_read_from_the_database_gives_the_same_id_as_a_uuid() -> None:
    org = uuid.UUID("0b7e2a9c-4a51-4f0e-9a43-1d2f8e6c7b10")

    assert row_id("calls", AsyncpgUUID(org.bytes), "call_1") == row_id("calls", org, "call_1")
