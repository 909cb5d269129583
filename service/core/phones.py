"""Phone numbers in E.164, so that "+1 (212) 555-1234" and "2125551234" are the same number.

Matching on the exact string was the most common trouble with the functions this service replaces.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

import phonenumbers

__all__ = ["PhoneBook", "to_e164"]


# Parsing a number is slow next to a lookup and the same few numbers recur in every batch; it is pure,
# so a bounded cache changes nothing but the time.
@functools.lru_cache(maxsize=65_536)
def to_e164(raw: str | None, default_region: str) -> str | None:
    """`raw` in E.164, reading numbers without a country code as `default_region`'s; None when `raw`
    cannot be a phone number."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    # Possible, not valid: validity follows carriers' allocations, and test or new ranges would fail it.
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class PhoneBook:
    """The organizations' imported numbers that a batch of events may mention: data, not a lookup."""

    default_region: str
    ids: Mapping[tuple[UUID, str], UUID] = field(default_factory=dict)
    """(org_id, E.164) -> phone_numbers.id"""

    def id_for(self, org_id: UUID, raw: str | None) -> UUID | None:
        e164 = to_e164(raw, self.default_region)
        return None if e164 is None else self.ids.get((org_id, e164))
