"""The write side of a rebuild alone: the finished rows of the four projection tables, COPYed into new
tables with the same definition and indexes. No log is read and no projection logic runs, so this is
what a rebuild would cost if its Python work were free: the fair ceiling for `rebuild --all`.

The rows are taken from the live tables after a rebuild (their COPY out is not timed), and written by
as many connections at once as the rebuild has processes, each table by one of them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from projections.registry import PROJECTIONS

__all__ = ["write_ceiling"]


async def _copy_in(url: str, table: str, rows: Path) -> None:
    copy = f"{table}__ceiling"
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(f'CREATE TABLE "{copy}" (LIKE "{table}" INCLUDING ALL)')
            await conn.copy_to_table(copy, source=rows, format="binary")
    finally:
        await conn.close()


async def write_ceiling(url: str, writers: int) -> float:
    """Seconds to write every projection table's rows into a copy of it, `writers` tables at a time."""
    tables = [projection.table.name for projection in PROJECTIONS.values()]
    conn = await asyncpg.connect(url)
    try:
        with tempfile.TemporaryDirectory(prefix="mightycall-ceiling-") as folder:
            files = {table: Path(folder, table) for table in tables}
            for table, path in files.items():
                await conn.execute(f'DROP TABLE IF EXISTS "{table}__ceiling"')
                await conn.copy_from_table(table, output=path, format="binary")
            # The rebuild starts from data on disk too: its log, read with the cache warm.
            await conn.execute("CHECKPOINT")
            limit = asyncio.Semaphore(writers)

            async def write(table: str) -> None:
                async with limit:
                    await _copy_in(url, table, files[table])

            started = time.perf_counter()
            await asyncio.gather(*(write(table) for table in tables))
            elapsed = time.perf_counter() - started
            for table in tables:
                await conn.execute(f'DROP TABLE "{table}__ceiling"')
        return elapsed
    finally:
        await conn.close()


if __name__ == "__main__":
    print(f"{asyncio.run(write_ceiling(os.environ['DATABASE_URL'], len(os.sched_getaffinity(0)))):.2f} s")
