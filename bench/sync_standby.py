"""What a synchronous standby costs the append path: `python -m bench.sync_standby [--rounds N]`.

One primary and one streaming standby on this machine (tests/support/replication.py), migrated. The
service's own append path (service/eventlog/group_commit.py: group commit into append_events(), no HTTP)
runs for a few seconds against the primary with the standby asynchronous (`synchronous_standby_names =
''`), then synchronous (naming it), the two in turn, the order alternating round by round; a reload
switches the setting, the same servers and the same log serve both. Two loads: one client at a time (each
append waits for its own commit: what a lone webhook waits) and 64 at once (group commit shares each
wait).

Both servers share this machine's disk and CPUs: a standby on its own host adds the network's round
trip to each synchronous commit, and its own disk's flush instead of a share of this one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
import uuid

import asyncpg

from service.database import migrations
from service.database.pool import create_pool
from service.eventlog.group_commit import Appender
from tests.support.deliveries import delivery
from tests.support.replication import STANDBY_NAME, Node, primary_and_standby, wait_for_sync_standby

LOADS = (1, 64)
SECONDS = 4.0
_counter = itertools.count()


async def _appends_per_second(url: str, org_id: uuid.UUID, clients: int) -> float:
    pool = await create_pool(url, min_size=1, max_size=2)
    appender = Appender(pool)
    appender.start()
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await appender.append(delivery(org_id, next(_counter)))
            done += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.perf_counter() - started)
    finally:
        await appender.close()
        await pool.close()


async def _synchronous(primary: Node, on: bool) -> None:
    conn = await asyncpg.connect(primary.url)
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME if on else ''}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    if on:
        await wait_for_sync_standby(primary)


async def main(rounds: int) -> None:
    with primary_and_standby(synchronous=False) as (primary, _):
        await asyncio.to_thread(migrations.upgrade, primary.url)
        org_id = uuid.uuid4()
        conn = await asyncpg.connect(primary.url)
        await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org_id)
        await conn.close()

        rates: dict[tuple[bool, int], list[float]] = {}
        for n in range(rounds):
            for synchronous in (False, True) if n % 2 == 0 else (True, False):
                await _synchronous(primary, synchronous)
                for clients in LOADS:
                    rate = await _appends_per_second(primary.url, org_id, clients)
                    rates.setdefault((synchronous, clients), []).append(rate)
                    mode = "synchronous " if synchronous else "asynchronous"
                    print(f"round {n + 1}: {mode} standby, {clients:>2} clients: {rate:8,.0f} appends/s")

    print("\nmedians (appends/s)   asynchronous   synchronous   ratio")
    for clients in LOADS:
        async_rate = statistics.median(rates[(False, clients)])
        sync_rate = statistics.median(rates[(True, clients)])
        ratio = sync_rate / async_rate
        print(f"{clients:>2} clients       {async_rate:14,.0f} {sync_rate:13,.0f}   {ratio:5.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args().rounds))
