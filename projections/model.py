"""What every projection is made of: events in, rows out, described as data."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

# asyncpg's own UUID type, what every uuid column is read as: a uuid.UUID, built from bytes in C. Built
# in Python, a uuid.UUID took most of row_id's time.
from asyncpg.pgproto.pgproto import UUID as _BytesUUID

from service.core.payloads import Payload
from service.core.phones import PhoneBook

__all__ = ["Event", "Key", "Projection", "Row", "RowSet", "Table", "id_of", "is_older", "row_id"]

Row = dict[str, Any]
"""Column name -> value, as written to (and read from) the projection's table."""
RowSet = dict[Any, Row]
"""The rows of one set of a table kept in sets (Table.in_sets), by the value of their key's last column."""
Key = tuple[Any, ...]
"""A row's natural key, in the order of Table.key; in a table kept in sets, a set's: every key column but
the last."""


class Event(msgspec.Struct, frozen=True):
    """An event of the log as projections see it: its position, envelope and decoded payload.

    A Struct rather than a frozen dataclass: a replay makes one per event, and a Struct is built ten
    times faster."""

    id: int
    kind: str
    org_id: UUID
    payload: Payload


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: Mapping[str, str]
    """Every column the projection writes -> its PostgreSQL type, `id` and the key included."""
    in_sets: bool = False
    """Whether the rows come in sets that an event replaces whole: the rows that share every key column
    but the last are one set (a report's metrics). The projection's `keys` then name sets and its `apply`
    takes and returns a RowSet (as a Row); a row the new set lacks is deleted."""

    @property
    def set_key(self) -> tuple[str, ...]:
        """The columns that name what `keys` name: a row, or in a table kept in sets, a set."""
        return self.key[:-1] if self.in_sets else self.key


@dataclass(frozen=True)
class Projection:
    """A projection is two pure functions over one table.

    `keys(event)` names the rows an event touches; `apply(row, event, key, phones)` returns the row
    as it is after the event, or None when the event changes nothing (it is older than what the row
    already reflects). `row` is None when the row does not exist yet. In a table kept in sets
    (Table.in_sets), keys name sets and `row` is a set's RowSet. No I/O, no clock, no randomness: the
    live projector and a rebuild from the log reach the same rows.
    """

    name: str
    version: int
    """Bump when the rows this projection writes change meaning; `projections status` then says that
    the table, built by an older version, is due a rebuild."""
    kinds: frozenset[str]
    table: Table
    keys: Callable[[Event], list[Key]]
    apply: Callable[[Row | None, Event, Key, PhoneBook], Row | None]
    phone_numbers: Callable[[Event], list[str | None]]
    """The raw numbers an event mentions, so the runner can load their ids before applying it."""
    row_phone_numbers: Callable[[Row], list[str | None]] = lambda row: [row.get("phone_number")]
    """The raw numbers a stored row holds that `apply` may link: a merged row can come to show a number
    an earlier batch gave it, and it must be linked then as a rebuild would link it."""


_NAMESPACE = uuid.UUID("6f1e7a52-3c59-4b5e-9d0c-8a1f0e4b2d11")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def row_id(table: str, *key: object) -> UUID:
    """The same natural key always gets the same id, in the live table and in any rebuild, and distinct
    keys of a table get distinct ids: uuid5 of the table and key in _NAMESPACE, computed here as
    uuid.uuid5 does but in a third of its time.

    The name hashed is the parts' lengths, then the parts themselves: `5 3 1\x1fcallsabcd` names
    ("calls", "abc", "d") and nothing else, whatever characters the parts hold. (Joined with a separator,
    ("a\x1fb", "c") and ("a", "b\x1fc") were one name.) Parts are compared as text, which is unambiguous
    because each key column has one type and is never NULL."""
    parts = [table, *map(str, key)]
    header = " ".join([str(len(part)) for part in parts])
    # surrogatepass: a lone surrogate is still a distinct name, not an error.
    name = _NAMESPACE_BYTES + (header + "\x1f" + "".join(parts)).encode("utf-8", "surrogatepass")
    # SHA-1 because uuid5 is defined with it; it names rows, it protects nothing.
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    found: UUID = _BytesUUID(bytes(digest[:16]))
    return found


def id_of(row: Row | None, table: str, key: Key) -> UUID:
    """The row's id: the one it has, or the one its key derives (the same value, without the hashing)."""
    return row["id"] if row is not None else row_id(table, *key)


def is_older(timestamp: Any, event_id: int, row_timestamp: Any, row_event_id: int) -> bool:
    """Whether an event is not newer than the one a row reflects: its payload timestamp is earlier, or
    equal with an earlier log position. Redeliveries and late retries never move a row backwards."""
    return bool((timestamp, event_id) <= (row_timestamp, row_event_id))
