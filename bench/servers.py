"""Which ASGI server and how many workers `serve` should use: the service measured under each.

uvicorn with one worker is what `serve` runs (its projector as a child process); the others run the
same app from service.asgi with `project` started beside them, against the same database and load.
"""

from __future__ import annotations

import statistics
import sys
import uuid
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
    uvicorn = f"{python} -m uvicorn service.asgi:app --port {port} --no-access-log --log-level warning"
    return {
        SERVE: [python, "-m", "service.cli", "serve", "--port", str(port)],
        "uvicorn, 2 workers": ["sh", "-c", f"{beside}{uvicorn} --workers 2"],
        "granian, 1 worker": ["sh", "-c", f"{beside}{granian} --workers 1 service.asgi:app"],
        "granian, 2 workers": ["sh", "-c", f"{beside}{granian} --workers 2 service.asgi:app"],
    }


def compare_servers(url: str, org: str, port: int, runs: int, seconds: int) -> dict[str, Any]:
    """Each configuration's median over `runs`, the runs interleaved so that drift hits all alike."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    measured: dict[str, list[Any]] = {}
    for _ in range(runs):
        for name, command in _configurations(port).items():
            with server(command, port, env=env):
                measured.setdefault(name, []).append(
                    wrk(port, org_id=org, run=f"servers-{uuid.uuid4().hex[:8]}", seconds=seconds)
                )
    found = {
        name: {
            "requests_per_s": statistics.median(r.requests_per_s for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
            "errors": sum(r.errors for r in results),
            "spread": _spread([r.requests_per_s for r in results]),
        }
        for name, results in measured.items()
    }
    fastest = max(found, key=lambda name: found[name]["requests_per_s"])
    margin = found[fastest]["requests_per_s"] / found[SERVE]["requests_per_s"] - 1
    # On a shared machine the order of close configurations changes from run to run: `serve` changes
    # only for one that is faster by more than either's own spread over the runs.
    beats_serve = margin > max(found[fastest]["spread"], found[SERVE]["spread"])
    return {
        "configurations": found,
        "fastest": fastest,
        "margin_over_serve": round(margin, 3),
        "winner": fastest if beats_serve else SERVE,
    }


def _spread(rates: list[float]) -> float:
    """(slowest to fastest run) / median."""
    return round((max(rates) - min(rates)) / statistics.median(rates), 3)


def paired(url: str, org: str, port: int, challenger: str, rounds: int, seconds: int) -> list[float]:
    """`challenger` against `serve`, alternating which goes first in each round: its rate over
    `serve`'s, round by round. A closer look than compare_servers' medians, when they point at a switch."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    commands = _configurations(port)
    ratios = []
    for round_ in range(rounds):
        order = [SERVE, challenger] if round_ % 2 == 0 else [challenger, SERVE]
        rates = {}
        for name in order:
            with server(commands[name], port, env=env):
                rates[name] = wrk(port, org_id=org, run=f"paired-{uuid.uuid4().hex[:8]}", seconds=seconds)
        ratios.append(rates[challenger].requests_per_s / rates[SERVE].requests_per_s)
        print(f"round {round_ + 1}: {challenger} / serve = {ratios[-1]:.2f}", flush=True)
    return ratios


if __name__ == "__main__":
    # python -m bench.servers "uvicorn, 2 workers" [ROUNDS]: on a fresh database, as make bench runs them.
    from bench.harness import bench_database, cli

    name, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 6
    with bench_database() as database_url:
        bench_org = cli("orgs", "add", "--name", "Bench", database_url=database_url)
        found = paired(database_url, bench_org, 18_790, name, rounds, seconds=8)
    print(f"{name} / serve: median {statistics.median(found):.2f} over {rounds} rounds")
