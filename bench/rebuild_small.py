"""A rebuild of the log most engineers have: `rebuild --all` of 100,000 events, timed from the command's
start to its exit (interpreter, imports, shadow tables, replay, indexes, swap), and of an empty log,
which is the fixed cost alone. Each in a database of its own beside the bench's, migrated and filled
once, then rebuilt `runs` times; the figure is the median.

    python -m bench.rebuild_small        # a throwaway database, 3 runs
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from typing import Any

import asyncpg

from bench.fill_log import fill_log, settle
from bench.harness import bench_database, cli
from bench.rebuild_bench import measure

__all__ = ["SMALL_LOG", "small_rebuilds"]

SMALL_LOG = 100_000


async def _create(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    database, _, query = admin_url.rpartition("?")
    return f"{database.rsplit('/', 1)[0]}/{name}?{query}"


def small_rebuilds(admin_url: str, runs: int) -> dict[str, Any]:
    """Seconds for `rebuild --all` of an empty log and of SMALL_LOG events, the median of `runs`."""
    found: dict[str, Any] = {"events": SMALL_LOG}
    for name, events in (("empty_log", 0), ("small_log", SMALL_LOG)):
        url = asyncio.run(_create(admin_url, f"bench_{name}"))
        cli("migrate", database_url=url)
        if events:
            org = cli("orgs", "add", "--name", "Bench", database_url=url)
            asyncio.run(fill_log(url, uuid.UUID(org), events))
        asyncio.run(settle(url))
        measure("rebuild", url, max(events, 1))  # a first run writes the bytecode caches
        found[f"{name}_s"] = statistics.median(
            measure("rebuild", url, max(events, 1))["seconds"] for _ in range(runs)
        )
    return found


if __name__ == "__main__":
    with bench_database() as admin:
        print(small_rebuilds(admin, 3))
