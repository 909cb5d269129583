"""Memory under sustained load: the service at full load for minutes, its RSS sampled throughout.

    python -m bench.soak [--minutes 5]

Writes bench/results/soak.json. The service's memory must stay flat: every queue, cache and buffer
in it is bounded, so the last minute's RSS should be within 10 % of the first minute's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from typing import Any

import psutil

from bench.harness import BENCH, SECRET, LoadResult, bench_database, cli, server, wrk

PORT = 18_760
_SAMPLE_EVERY_S = 5


def _rss_mb(port: int) -> dict[str, float]:
    """RSS of the web process (the one listening on `port`) and of its projector child."""
    web = next(
        psutil.Process(c.pid)
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid is not None
    )
    rss = {"web": web.memory_info().rss / 2**20}
    for child in web.children():
        rss["projector"] = child.memory_info().rss / 2**20
    return rss


def soak(minutes: float) -> dict[str, Any]:
    seconds = int(minutes * 60)
    samples: list[tuple[float, dict[str, float]]] = []
    load: list[LoadResult] = []
    with bench_database() as url:
        org = cli("orgs", "add", "--name", "Soak", database_url=url)
        env = {"DATABASE_URL": url, "MIGHTYCALL_WEBHOOK_SECRET": SECRET}
        with server([sys.executable, "-m", "service.cli", "serve", "--port", str(PORT)], PORT, env=env):

            def run_load() -> None:
                load.append(wrk(PORT, org_id=org, run=f"soak-{uuid.uuid4().hex[:8]}", seconds=seconds))

            runner = threading.Thread(target=run_load)
            started = time.monotonic()
            runner.start()
            while runner.is_alive():
                samples.append((time.monotonic() - started, _rss_mb(PORT)))
                runner.join(_SAMPLE_EVERY_S)
    result: dict[str, Any] = {"minutes": minutes, "load": load[0].as_json()}
    for process in ("web", "projector"):
        first = [rss[process] for at, rss in samples if at < 60 and process in rss]
        last = [rss[process] for at, rss in samples if at >= seconds - 60 and process in rss]
        first_mb, last_mb = statistics.median(first), statistics.median(last)
        result[process] = {
            "first_minute_mb": round(first_mb, 1),
            "last_minute_mb": round(last_mb, 1),
            "peak_mb": round(max(rss[process] for _, rss in samples if process in rss), 1),
            "growth": round(last_mb / first_mb - 1, 3),
        }
    result["flat"] = all(result[p]["growth"] <= 0.10 for p in ("web", "projector"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5)
    result = soak(parser.parse_args().minutes)
    out = BENCH / "results" / "soak.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
