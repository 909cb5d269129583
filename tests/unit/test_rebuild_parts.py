"""The parts a replay is split into (projections/rebuild/part.py): every key in exactly one, the same
one in every process."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from projections.rebuild.part import Part

_KEYS = st.tuples(st.uuids(), st.text(), st.text())


@given(key=_KEYS, count=st.integers(min_value=1, max_value=8))
def test_every_key_is_held_by_exactly_one_part(key, count):
    assert sum(Part(index, count).holds(key) for index in range(count)) == 1


def test_which_part_holds_a_key_does_not_depend_on_the_process():
    # CRC-32 of "a" is 0xE8B7BE43, odd; Python's own str hash would differ from process to process.
    assert Part(1, 2).holds(("a",)) and not Part(0, 2).holds(("a",))


def test_the_keys_of_a_log_are_dealt_out_evenly():
    org = uuid.uuid4()
    held = [sum(Part(index, 2).holds((org, f"call_{n}")) for n in range(10_000)) for index in range(2)]
    assert min(held) > 4_500
