"""Which ASGI server and how many workers `serve` should use: the service measured under each.

uvicorn with one worker is what `serve` runs (its projector as a child process); the others run the
same app from service.server.asgi with `project` started beside them, against the same database and load.
"""

from __future__ import annotations

import statistics
import sys
import uuid
from collections.abc import Collection
from typing import Any

from bench.harness import SECRET, server, wrk

__all__ = ["SERVE", "compare_servers"]

SERVE = "uvicorn, 1 worker (serve)"
"""What `serve` runs."""


def _configurations(port: int) -> dict[str, list[str]]:
    python = sys.executable
    beside = f"{python} -m service.cli project 2>/dev/null & exec "
    granian = (
        f"{python} -m granian --interface asgi --host 127.0.0.1 --port {port} --http 1 --no-ws --loop uvloop"
        " --log-level warning"
    )
    uvicorn = f"{python} -m uvicorn service.server.asgi:app --port {port} --no-access-log --log-level warning"
    return {
        SERVE: [python, "-m", "service.cli", "serve", "--port", str(port)],
        "uvicorn, 2 workers": ["sh", "-c", f"{beside}{uvicorn} --workers 2"],
        "granian, 1 worker": ["sh", "-c", f"{beside}{granian} --workers 1 service.server.asgi:app"],
        "granian, 2 workers": ["sh", "-c", f"{beside}{granian} --workers 2 service.server.asgi:app"],
    }


_MARGIN = 0.05
"""How much faster than `serve`, round by round, a configuration must be for `serve` to switch to it: a
second worker costs memory and halves each appender's batches, which only a clear gain pays for."""


def compare_servers(
    url: str, org: str, port: int, runs: int, seconds: int, names: Collection[str] | None = None
) -> dict[str, Any]:
    """The configurations (all, or `names` and `serve`) measured in turn, round after round, the order
    reversed every other round so that drift within a round favours none; each one's median, and its
    rate over `serve`'s in the same round. On a shared machine the medians of close configurations trade
    places from run to run: `serve` changes only for one faster than it in every round, by a median
    margin over _MARGIN."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    commands = {
        name: command
        for name, command in _configurations(port).items()
        if names is None or name in names or name == SERVE
    }
    measured: dict[str, list[Any]] = {}
    for round_ in range(runs):
        for name in list(commands)[:: 1 if round_ % 2 == 0 else -1]:
            with server(commands[name], port, env=env):
                measured.setdefault(name, []).append(
                    wrk(port, org_id=org, run=f"servers-{uuid.uuid4().hex[:8]}", seconds=seconds)
                )
    found: dict[str, dict[str, Any]] = {}
    for name, results in measured.items():
        found[name] = {
            "requests_per_s": statistics.median(r.requests_per_s for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
            "errors": sum(r.errors for r in results),
            "over_serve_by_round": [
                round(r.requests_per_s / s.requests_per_s, 3)
                for r, s in zip(results, measured[SERVE], strict=True)
            ],
        }
    challengers = {
        name: statistics.median(r["over_serve_by_round"])
        for name, r in found.items()
        if name != SERVE and min(r["over_serve_by_round"]) > 1
    }
    best = max(challengers, key=challengers.__getitem__, default=None)
    return {
        "configurations": found,
        "winner": best if best is not None and challengers[best] > 1 + _MARGIN else SERVE,
    }


if __name__ == "__main__":
    # python -m bench.servers "uvicorn, 2 workers" [ROUNDS]: that one and `serve`, on a fresh database, as
    # make bench runs them, for a closer look than make bench's three rounds.
    from bench.harness import bench_database, cli

    name, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6
    with bench_database() as database_url:
        bench_org = cli("orgs", "add", "--name", "Bench", database_url=database_url)
        outcome = compare_servers(database_url, bench_org, 18_790, rounds, seconds=8, names=[name])
    ratios = outcome["configurations"][name]["over_serve_by_round"]
    print(f"{name} / serve by round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"serve should run: {outcome['winner']}")
