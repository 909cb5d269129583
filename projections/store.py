"""Reading and writing a projection's rows, set-based: one statement per batch, not one per row.

`table_name` is passed separately from the Table because a rebuild writes the same rows into a
shadow table before it is swapped in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from projections.model import Key, Row, Table

__all__ = ["load_rows", "quote", "upsert_rows"]


def quote(identifier: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


async def load_rows(
    conn: asyncpg.Connection, table: Table, table_name: str, keys: Iterable[Key]
) -> dict[Key, Row]:
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    arrays = [list(column) for column in zip(*keys, strict=True)]
    unnest = ", ".join(f"${i}::{table.columns[name]}[]" for i, name in enumerate(table.key, start=1))
    join = " AND ".join(f"t.{quote(name)} = k.{quote(name)}" for name in table.key)
    names = ", ".join(quote(name) for name in table.key)
    rows = await conn.fetch(
        f"SELECT t.* FROM {quote(table_name)} t JOIN unnest({unnest}) AS k ({names}) ON {join}",
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
        f"{quote(name)} = EXCLUDED.{quote(name)}" for name in columns if name not in table.key
    )
    await conn.execute(
        f"INSERT INTO {quote(table_name)} ({', '.join(map(quote, columns))}) "
        f"SELECT * FROM unnest({unnest}) "
        f"ON CONFLICT ({', '.join(map(quote, table.key))}) DO UPDATE SET {updates}",
        *arrays,
    )
