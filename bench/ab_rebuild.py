"""Two builds' `rebuild --all` side by side: this checkout and another, in turn on one log.

    git worktree add ../base <commit>
    python -m bench.ab_rebuild ../base [ROUNDS] [EVENTS]

The log (1,000,000 events unless EVENTS says otherwise, bench/fill_log.py) is filled and vacuumed
once; then each round runs both builds' command, the order alternating (bench/ab.py's in_turn), so
that both meet the machine's drift alike. Each prints events/s and the peak RSS of the rebuild's
processes; the end, the median ratio.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from bench.ab import in_turn
from bench.fill_log import fill_log, settle
from bench.harness import bench_database, cli
from bench.rebuild_bench import measure


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    with bench_database() as url:
        org = cli("orgs", "add", "--name", "Bench", database_url=url)
        asyncio.run(fill_log(url, uuid.UUID(org), events))
        # Autovacuum would otherwise take up the new log during the first round, at its expense only.
        asyncio.run(settle(url))

        def run(checkout: Path) -> tuple[float, str]:
            found = measure("rebuild", url, events, checkout=checkout)
            rate = found["events_per_s"]
            return rate, f"{rate:,.0f} events/s, peak RSS {found['peak_rss_mb']:.0f} MB"

        in_turn(base, rounds, run)


if __name__ == "__main__":
    main()
