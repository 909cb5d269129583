"""Reading and writing a projection's rows, set-based: one statement per batch, not one per row.

`table_name` is passed separately from the Table because a rebuild writes the same rows into a
shadow table before it is swapped in. In a table kept in sets (Table.in_sets), keys name sets, and what
is read and written is each set's RowSet.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

import asyncpg

from projections.model import Key, Row, RowSet, Table

__all__ = ["load_rows", "members", "quote", "upsert_rows"]


def quote(identifier: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


async def load_rows(
    conn: asyncpg.Connection, table: Table, table_name: str, keys: Iterable[Key]
) -> dict[Key, Row]:
    """The rows (or, kept in sets, the sets) of `keys` that the table holds."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    key = table.set_key
    arrays = [list(column) for column in zip(*keys, strict=True)]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(key, start=1))
    join = " AND ".join(f"t.{quote(name)} = k.{quote(name)}" for name in key)
    names = ", ".join(quote(name) for name in key)
    rows = await conn.fetch(
        f"SELECT t.* FROM {quote(table_name)} t JOIN unnest({unnest}) AS k ({names}) ON {join}",
        *arrays,
    )
    if not table.in_sets:
        return {tuple(row[name] for name in key): dict(row) for row in rows}
    member = table.key[-1]
    sets: dict[Key, RowSet] = {}
    for row in rows:
        sets.setdefault(tuple(row[name] for name in key), {})[row[member]] = dict(row)
    return sets


def members(table: Table, rows: Sequence[Row]) -> Sequence[Row]:
    """The table's rows that `rows` stand for: themselves, or kept in sets, every row of each set."""
    if not table.in_sets:
        return rows
    return [row for rowset in rows for row in rowset.values()]


async def upsert_rows(
    conn: asyncpg.Connection,
    table: Table,
    table_name: str,
    rows: Sequence[Row],
    *,
    stored: Container[Key] | None = None,
) -> None:
    """Write `rows` over what the table holds for their keys; kept in sets, each set replaces the one of
    its key, and the rows the new set lacks are deleted. `stored`, when given, holds the keys of the sets
    the table has rows for: a set that was not stored has nothing to delete, and is not looked for."""
    if not rows:
        return
    if table.in_sets:
        replacing = (
            rows if stored is None else [rowset for rowset in rows if _set_key(table, rowset) in stored]
        )
        if replacing:
            await _delete_left_out(conn, table, table_name, replacing)
        rows = members(table, rows)
    columns = list(table.columns)
    arrays = [[row[name] for row in rows] for name in columns]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(columns, start=1))
    updates = ", ".join(
        f"{quote(name)} = EXCLUDED.{quote(name)}" for name in columns if name not in table.key
    )
    await conn.execute(
        f"INSERT INTO {quote(table_name)} ({', '.join(map(quote, columns))}) "
        f"SELECT * FROM unnest({unnest}) "
        f"ON CONFLICT ({', '.join(map(quote, table.key))}) DO UPDATE SET {updates}",
        *arrays,
    )


def _set_key(table: Table, rowset: RowSet) -> Key:
    first = next(iter(rowset.values()))
    return tuple(first[name] for name in table.set_key)


async def _delete_left_out(
    conn: asyncpg.Connection, table: Table, table_name: str, sets: Sequence[RowSet]
) -> None:
    """Delete the rows of the sets' keys that the sets no longer hold. Ids name rows (one key, one id),
    so the rows kept are those whose id is among the new sets'."""
    key = table.set_key
    arrays = [list(column) for column in zip(*(_set_key(table, rowset) for rowset in sets), strict=True)]
    kept = [row["id"] for rowset in sets for row in rowset.values()]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(key, start=1))
    join = " AND ".join(f"t.{quote(name)} = k.{quote(name)}" for name in key)
    names = ", ".join(quote(name) for name in key)
    await conn.execute(
        f"DELETE FROM {quote(table_name)} t USING unnest({unnest}) AS k ({names}) WHERE {join} "
        f"AND t.id NOT IN (SELECT unnest(${len(key) + 1}::uuid[]))",
        *arrays,
        kept,
    )
