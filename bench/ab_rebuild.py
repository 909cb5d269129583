"""Two builds' `rebuild --all` side by side: this checkout and another, in turn on one log.

    git worktree add ../base <commit>
    python -m bench.ab_rebuild ../base [ROUNDS] [EVENTS]

The log (1,000,000 events unless EVENTS says otherwise, bench/fill_log.py) is filled and vacuumed once;
then each round runs both builds' command, the order alternating, so that both meet the machine's drift alike.
Each prints events/s and the peak RSS of the rebuild's processes; the end, the median ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from pathlib import Path

import asyncpg

from bench.fill_log import fill_log
from bench.harness import ROOT, bench_database, cli
from bench.rebuild_bench import measure


async def _settle(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE) event_log")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    ratios = []
    with bench_database() as url:
        org = cli("orgs", "add", "--name", "Bench", database_url=url)
        asyncio.run(fill_log(url, uuid.UUID(org), events))
        # Autovacuum would otherwise take up the new log during the first round, at its expense only.
        asyncio.run(_settle(url))
        for round_ in range(rounds):
            builds = [("base", base), ("this", ROOT)]
            rates = {}
            for name, checkout in builds if round_ % 2 == 0 else builds[::-1]:
                found = measure("rebuild", url, events, checkout=checkout)
                rates[name] = found["events_per_s"]
                print(
                    f"round {round_ + 1} {name}: {found['events_per_s']:,.0f} events/s,"
                    f" peak RSS {found['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
            ratios.append(rates["this"] / rates["base"])
    print(f"this / base: median {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
