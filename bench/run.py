"""`make bench`: every figure side by side in one run, each the median of several runs.

    python -m bench.run [--quick] [--events N]

Loopback only, bounded (under 10 minutes on 2 cores). Prints a table and writes
bench/results/latest.json and bench/results/latest.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.chart import draw
from bench.cpu import cpu_shares
from bench.db_ceiling import db_ceiling
from bench.fill_log import fill_log
from bench.harness import BENCH, ROOT, SECRET, LoadResult, bench_database, cli, median_result, server, wrk
from bench.live_lag import live_lag
from bench.rebuild_bench import measure
from bench.rebuild_small import small_rebuilds
from bench.servers import SERVE, compare_servers
from bench.write_ceiling import write_ceiling

PORT = 18_700
PEER = BENCH / "peers" / "fastapi_orm"
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"


def _count(url: str, table: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        finally:
            await conn.close()

    return asyncio.run(count())


def _catch_up(url: str) -> tuple[int, float]:
    """How far the live projector was behind when the load stopped, and how long it took to catch up."""

    async def wait() -> tuple[int, float]:
        conn = await asyncpg.connect(url)
        lag = "SELECT (SELECT position FROM event_log_head) - min(position) FROM projection_checkpoints"
        try:
            behind, started = int(await conn.fetchval(lag)), time.monotonic()
            while True:
                if await conn.fetchval(lag) == 0:
                    break
                await asyncio.sleep(0.1)
            return behind, round(time.monotonic() - started, 1)
        finally:
            await conn.close()

    return asyncio.run(wait())


def _checkpoint(url: str) -> None:
    """Flush what earlier configurations wrote, so that no measurement pays for another's writes."""

    async def checkpoint() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    asyncio.run(checkpoint())


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _peer_command(workers: int) -> list[str]:
    return [str(PEER_PYTHON), "-m", "uvicorn", "app:app", "--port", str(PORT + 2), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def _peer_workers(url: str, org: str) -> int:
    """The peer's best worker count, from short runs."""
    env = {"DATABASE_URL": url, "PEER_WEBHOOK_SECRET": SECRET}
    best: tuple[float, int] = (0.0, 1)
    for workers in (1, 2, 4):
        _checkpoint(url)
        with server(_peer_command(workers), PORT + 2, env=env, cwd=PEER):
            rate = wrk(PORT + 2, org_id=org, run=f"peer-try-{workers}-{uuid.uuid4().hex[:6]}", seconds=3)
        best = max(best, (rate.requests_per_s, workers))
    return best[1]


def _service_run(url: str, org: str, seconds: int) -> dict[str, Any]:
    """One run of `serve`: the load, the CPU it took, and whether every 2xx reached the log."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    before = _count(url, "event_log")
    command = [sys.executable, "-m", "service.cli", "serve", "--port", str(PORT + 1)]
    with server(command, PORT + 1, env=env), cpu_shares() as shares:
        result = wrk(PORT + 1, org_id=org, run=f"service-{uuid.uuid4().hex[:8]}", seconds=seconds)
        behind, caught_up_s = _catch_up(url)
    appended = _count(url, "event_log") - before
    return {"load": result, "appended": appended, "shares": shares.cores_busy, "behind": behind,
            "caught_up_s": caught_up_s}  # fmt: skip


def ingest(url: str, org: str, runs: int, seconds: int) -> dict[str, Any]:
    """The HTTP ceiling, the bare durable receiver (each as a litestar app, and in the service's raw ASGI
    style: bench/raw_style.py), `serve` and the peer take turns, run by run, so that the machine's drift
    (these machines are shared) hits all of them alike."""
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    others: dict[str, tuple[list[str], int, dict[str, str], Path]] = {
        "http_ceiling": (_uvicorn("bench.ceiling_app:app", PORT), PORT, {}, ROOT),
        "http_ceiling_raw": (_uvicorn("bench.ceiling_raw_app:app", PORT), PORT, {}, ROOT),
        "bare_durable": (_uvicorn("bench.bare_durable_app:app", PORT + 5), PORT + 5, env, ROOT),
        "bare_durable_raw": (_uvicorn("bench.bare_durable_raw_app:app", PORT + 5), PORT + 5, env, ROOT),
    }
    peer_workers = _peer_workers(url, org) if PEER_PYTHON.exists() else None
    if peer_workers is not None:
        peer_env = {"DATABASE_URL": url, "PEER_WEBHOOK_SECRET": SECRET}
        others["peer"] = (_peer_command(peer_workers), PORT + 2, peer_env, PEER)

    loads: dict[str, list[LoadResult]] = {name: [] for name in [*others, "service"]}
    service_runs = []
    for _ in range(runs):
        for name, (command, port, server_env, cwd) in others.items():
            _checkpoint(url)
            with server(command, port, env=server_env, cwd=cwd):
                loads[name].append(
                    wrk(port, org_id=org, run=f"{name}-{uuid.uuid4().hex[:8]}", seconds=seconds)
                )
        _checkpoint(url)
        service_runs.append(_service_run(url, org, seconds))
        loads["service"].append(service_runs[-1]["load"])

    found: dict[str, Any] = {name: median_result(results).as_json() for name, results in loads.items()}
    # Both bare receivers write the same table.
    found["bare_durable"]["every_2xx_logged"] = found["bare_durable_raw"]["every_2xx_logged"] = (
        _count(url, "bench_bare_log")
        >= found["bare_durable"]["requests"] + found["bare_durable_raw"]["requests"]
    )
    appended = sum(run["appended"] for run in service_runs)
    found["service"] |= {
        "appended": appended,
        "every_2xx_logged": all(run["appended"] >= run["load"].requests for run in service_runs),
        "cores_busy": {
            group: round(statistics.mean(run["shares"][group] for run in service_runs), 2)
            for group in service_runs[0]["shares"]
        },
        "projector_behind_at_end": max(run["behind"] for run in service_runs),
        "projector_caught_up_s": max(run["caught_up_s"] for run in service_runs),
    }
    if peer_workers is not None:
        found["peer"]["workers"] = peer_workers

    # Last: it writes far more than the others, and the checkpoints that follow would slow whatever came next.
    _checkpoint(url)
    rows = [asyncio.run(db_ceiling(url, uuid.UUID(org), seconds=seconds)) for _ in range(runs)]
    found["db_ceiling"] = {"rows_per_s": statistics.median(rows)}
    return found


def rebuilds(url: str, org: str, events: int, runs: int) -> dict[str, Any]:
    head = _count(url, "event_log")
    asyncio.run(fill_log(url, uuid.UUID(org), events - head))
    results: dict[str, Any] = {"events": events}
    for what in ("ceiling", "rebuild"):
        measured = [measure(what, url, events) for _ in range(runs)]
        results[what] = {
            "events_per_s": statistics.median(m["events_per_s"] for m in measured),
            "peak_rss_mb": max(m["peak_rss_mb"] for m in measured),
        }
    # The tables now hold the rebuild's finished rows: write them again, the write side alone.
    writers = len(os.sched_getaffinity(0))
    written = [asyncio.run(write_ceiling(url, writers)) for _ in range(runs)]
    results["write_ceiling"] = {"events_per_s": events / statistics.median(written), "writers": writers}
    return results


def lag(url: str, org: str, rate: float, seconds: int) -> dict[str, Any]:
    env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
    with server([sys.executable, "-m", "service.cli", "serve", "--port", str(PORT + 3)], PORT + 3, env=env):
        return asyncio.run(
            live_lag(url, PORT + 3, org, rate=rate, seconds=seconds, run=f"lag-{uuid.uuid4().hex[:8]}")
        )


def _cpu_per_webhook(service: dict[str, Any]) -> dict[str, float]:
    """µs of CPU per webhook answered, by group of processes, and the system's (the load's excepted)."""
    busy, rate = service["cores_busy"], service["requests_per_s"]
    per = {group: round(busy[group] / rate * 1e6) for group in ("web", "projector", "postgres")}
    return per | {"system": sum(per.values())}


def _table(results: dict[str, Any]) -> str:
    ingest_ = results["ingest"]
    ceiling = ingest_["http_ceiling"]["requests_per_s"]
    lines = [f"{'configuration':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs ceiling':>12}"]
    labels = (
        ("http_ceiling", "HTTP ceiling (no database)"),
        ("http_ceiling_raw", "  the same, raw ASGI style"),
        ("bare_durable", "bare durable receiver"),
        ("bare_durable_raw", "  the same, raw ASGI style"),
        ("service", "this service"),
        ("peer", "FastAPI + ORM peer"),
    )
    for name, label in labels:
        if name in ingest_:
            r = ingest_[name]
            lines.append(
                f"{label:<28}{r['requests_per_s']:>10,.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
                f"{r['requests_per_s'] / ceiling:>11.2f}x"
            )
    lines.append(f"{'database ceiling (rows/s)':<28}{ingest_['db_ceiling']['rows_per_s']:>10,.0f}")
    busy = ", ".join(f"{group} {cores:.2f}" for group, cores in ingest_["service"]["cores_busy"].items())
    lines.append(f"cores busy while the service ran: {busy}")
    per = ", ".join(f"{group} {us}" for group, us in ingest_["service"]["cpu_us_per_webhook"].items())
    lines.append(f"CPU per webhook, µs: {per}")
    lines.append(
        f"projector behind when the load stopped: {ingest_['service']['projector_behind_at_end']:,} events,"
        f" caught up in {ingest_['service']['projector_caught_up_s']} s"
    )
    if "servers" in results:
        for name, r in results["servers"]["configurations"].items():
            rate, p99 = r["requests_per_s"], r["p99_ms"]
            lines.append(f"  {name:<26}{rate:>10,.0f}{'':>9}{p99:>9.1f}{r['errors']:>8}")
        servers = results["servers"]
        lines.append(
            "  rate over serve's, round by round: "
            + "; ".join(
                f"{name} {', '.join(f'{r:.2f}' for r in c['over_serve_by_round'])}"
                for name, c in servers["configurations"].items()
                if name != SERVE
            )
        )
        # Three rounds are what the bench's ten minutes allow: one configuration ahead in all three
        # happens by chance one time in eight, so a switch is confirmed with more rounds first.
        lines.append(
            f"  serve should run: {servers['winner']}"
            + (
                f' (faster in every round; confirm: python -m bench.servers "{servers["winner"]}" 10)'
                if servers["winner"] != SERVE
                else ""
            )
        )
    ratios = results["ratios"]
    lines.append(f"service / peer: {ratios.get('service_over_peer', float('nan')):.1f}x; "
                 f"every 2xx in the log: {ingest_['service']['every_2xx_logged']}")  # fmt: skip
    lines.append(
        f"service / bare durable receiver: {ratios['service_over_bare_durable']:.2f}x (raw ASGI style),"
        f" {ratios['service_over_bare_durable_litestar']:.2f}x (litestar)"
    )
    if "rebuild" in results:
        rb = results["rebuild"]
        lines.append(
            f"rebuild, {rb['events']:,} events, all four projections:"
            f" {rb['rebuild']['events_per_s']:,.0f} events/s, peak RSS {rb['rebuild']['peak_rss_mb']:.0f} MB;"
            " bare stream+COPY ceiling"
            f" {rb['ceiling']['events_per_s']:,.0f} events/s ({ratios['rebuild_over_ceiling']:.2f}x);"
            f" write-side ceiling {rb['write_ceiling']['events_per_s']:,.0f} events/s"
            f" ({ratios['rebuild_over_write_ceiling']:.2f}x)"
        )
        small = rb["small"]
        lines.append(
            f"rebuild --all, command start to exit: {small['events']:,} events {small['small_log_s']:.2f} s,"
            f" empty log {small['empty_log_s']:.2f} s"
        )
    if "live_lag" in results:
        lv = results["live_lag"]
        lines.append(
            f"live lag at {lv['achieved_per_s']:,.0f}/s: append-to-row"
            f" p50 {lv['append_to_row_p50_ms']:.0f} ms, p99 {lv['append_to_row_p99_ms']:.0f} ms,"
            f" max lag {lv['max_lag_events']} events,"
            f" kept up: {lv['kept_up']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="short runs, a small log: to try the bench itself"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="log size for the rebuild")
    args = parser.parse_args()
    runs, seconds = (1, 3) if args.quick else (3, 10)
    events = 50_000 if args.quick else args.events
    lag_seconds = 10 if args.quick else 60

    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "runs_per_figure": runs,
    }
    with bench_database() as url:
        org = cli("orgs", "add", "--name", "Bench", database_url=url)
        results["ingest"] = ingest(url, org, runs, seconds)
        results["servers"] = compare_servers(url, org, PORT + 4, runs, max(3, seconds // 2))
        ceiling = results["ingest"]["http_ceiling"]["requests_per_s"]
        service = results["ingest"]["service"]["requests_per_s"]
        results["live_lag"] = lag(url, org, rate=service / 2, seconds=lag_seconds)
        results["rebuild"] = rebuilds(url, org, events, runs)
        results["rebuild"]["small"] = small_rebuilds(url, runs)
    results["ratios"] = {
        "service_over_http_ceiling": service / ceiling,
        "bare_durable_over_http_ceiling": results["ingest"]["bare_durable"]["requests_per_s"] / ceiling,
        # The service answers webhooks in the raw ASGI style: its ratio is to the receiver built the same way.
        "service_over_bare_durable": service / results["ingest"]["bare_durable_raw"]["requests_per_s"],
        "service_over_bare_durable_litestar": service / results["ingest"]["bare_durable"]["requests_per_s"],
        "rebuild_over_ceiling": results["rebuild"]["rebuild"]["events_per_s"]
        / results["rebuild"]["ceiling"]["events_per_s"],
        "rebuild_over_write_ceiling": results["rebuild"]["rebuild"]["events_per_s"]
        / results["rebuild"]["write_ceiling"]["events_per_s"],
    }
    results["ingest"]["service"]["cpu_us_per_webhook"] = _cpu_per_webhook(results["ingest"]["service"])
    if "peer" in results["ingest"]:
        results["ratios"]["service_over_peer"] = service / results["ingest"]["peer"]["requests_per_s"]
    results["seconds"] = round(time.monotonic() - started)

    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    draw(results, out / "latest.png")
    print(_table(results))
    print(f"\n{results['seconds']} s; bench/results/latest.json, bench/results/latest.png")


if __name__ == "__main__":
    main()
