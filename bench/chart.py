"""The chart of a benchmark run: throughput and latency per configuration, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen here
import matplotlib.pyplot as plt


def draw(results: dict[str, Any], path: Path) -> None:
    ingest = results["ingest"]
    shown = ("http_ceiling", "http_ceiling_raw", "bare_durable", "bare_durable_raw", "service", "peer")
    names = [name for name in shown if name in ingest]
    labels = {
        "http_ceiling": "HTTP ceiling\n(no database)",
        "http_ceiling_raw": "ceiling,\nraw ASGI",
        "bare_durable": "bare durable\nreceiver",
        "bare_durable_raw": "bare durable,\nraw ASGI",
        "service": "this service",
        "peer": "FastAPI + ORM\npeer",
    }
    figure, (throughput, latency, servers) = plt.subplots(1, 3, figsize=(16, 4.4))
    bars = throughput.bar(
        [labels[n] for n in names], [ingest[n]["requests_per_s"] for n in names], color="#4472c4"
    )
    throughput.bar_label(bars, fmt="%.0f")
    throughput.set_title("webhooks per second (64 connections)")
    throughput.tick_params(axis="x", labelsize=8)
    width = 0.38
    positions = range(len(names))
    latency.bar([p - width / 2 for p in positions], [ingest[n]["p50_ms"] for n in names], width, label="p50")
    latency.bar([p + width / 2 for p in positions], [ingest[n]["p99_ms"] for n in names], width, label="p99")
    latency.set_xticks(list(positions), [labels[n] for n in names])
    latency.tick_params(axis="x", labelsize=8)
    latency.set_yscale("log")
    latency.set_title("latency, ms (log scale)")
    latency.legend()
    configurations = results.get("servers", {}).get("configurations", {})
    server_bars = servers.bar(
        [name.replace(", ", "\n") for name in configurations],
        [r["requests_per_s"] for r in configurations.values()],
        color="#70ad47",
    )
    servers.bar_label(server_bars, fmt="%.0f")
    servers.set_title("this service under each ASGI server, webhooks/s")
    figure.suptitle(f"mightycall-ingest — {results['machine']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
