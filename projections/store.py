"""Reading and writing a projection's rows, set-based: one statement per batch, not one per row.

`table_name` is passed separately from the Table because a rebuild writes the same rows into a
shadow table before it is swapped in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from projections.model import Key, Row, Table

__all__ = ["load_rows", "upsert_rows"]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def load_rows(
    conn: asyncpg.Connection, table: Table, table_name: str, keys: Iterable[Key]
) -> dict[Key, Row]:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    arrays = [list(column) for column in zip(*keys, strict=True)]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(table.key, start=1))
    join = " AND ".join(f"t.{_quote(name)} = k.{_quote(name)}" for name in table.key)
    names = ", ".join(_quote(name) for name in table.key)
    rows = await conn.fetch(
        f"SELECT t.* FROM {_quote(table_name)} t JOIN unnest({unnest}) AS k ({names}) ON {join}",
        *arrays,
    )
    return {tuple(row[name] for name in table.key): dict(row) for row in rows}


async def upsert_rows(conn: asyncpg.Connection, table: Table, table_name: str, rows: Sequence[Row]) -> None:
    if not rows:
        return
    columns = list(table.columns)
    arrays = [[row[name] for row in rows] for name in columns]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(columns, start=1))
    updates = ", ".join(
        f"{_quote(name)} = EXCLUDED.{_quote(name)}" for name in columns if name not in table.key
    )
    await conn.execute(
        f"INSERT INTO {_quote(table_name)} ({', '.join(map(_quote, columns))}) "
        f"SELECT * FROM unnest({unnest}) "
        f"ON CONFLICT ({', '.join(map(_quote, table.key))}) DO UPDATE SET {updates}",
        *arrays,
    )
