"""Two builds of `serve` side by side: this checkout and another, in turn on one fresh database.

    git worktree add ../base <commit>
    python -m bench.ab ../base [ROUNDS]

On a shared machine two runs minutes apart can differ by a third; taken in turn, with the order
alternating, both builds meet the same drift. Each round prints both builds' webhooks/s, the web
process's CPU per webhook and the cores each group of processes kept busy; the end, the median ratio.
"""

from __future__ import annotations

import statistics
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.cpu import cpu_shares
from bench.harness import ROOT, SECRET, bench_database, cli, server, wrk

_PORT = 18_795
_SECONDS = 8


def _run(checkout: Path, url: str, org: str) -> tuple[float, float, dict[str, float]]:
    """One run of `serve` from `checkout`: webhooks/s, web CPU µs per webhook, cores busy."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    # `python -m` puts the working directory first on the path: the checkout's own code is served.
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(_PORT)]
    with server(command, _PORT, env=env, cwd=checkout):
        wrk(_PORT, org_id=org, run=f"warm-{uuid.uuid4().hex[:8]}", seconds=2)
        with cpu_shares() as shares:
            result = wrk(_PORT, org_id=org, run=f"ab-{uuid.uuid4().hex[:8]}", seconds=_SECONDS)
    web_us = shares.cores_busy["web"] / result.requests_per_s * 1e6
    return result.requests_per_s, web_us, shares.cores_busy


def in_turn(base: Path, rounds: int, run: Callable[[Path], tuple[float, str]]) -> None:
    """`run` with `base`'s checkout and with this one, in turn, the order alternating round by round;
    `run` returns the rate to compare and a line to print. Prints each run, then the median ratio."""
    ratios = []
    for round_ in range(rounds):
        builds = [("base", base), ("this", ROOT)]
        rates = {}
        for name, checkout in builds if round_ % 2 == 0 else builds[::-1]:
            rates[name], line = run(checkout)
            print(f"round {round_ + 1} {name}: {line}", flush=True)
        ratios.append(rates["this"] / rates["base"])
    print(f"this / base: median {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with bench_database() as url:
        org = cli("orgs", "add", "--name", "Bench", database_url=url)

        def run(checkout: Path) -> tuple[float, str]:
            rate, web_us, busy = _run(checkout, url, org)
            return rate, f"{rate:,.0f}/s, web {web_us:.0f} µs/webhook, {busy}"

        in_turn(base, rounds, run)


if __name__ == "__main__":
    main()
