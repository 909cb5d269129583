"""Live lag: webhooks at a steady rate through the real service, and how long each takes from its
append to its rows (every projection's checkpoint past it), sampled every 10 ms."""

from __future__ import annotations

import asyncio
import bisect
import statistics
import time

import asyncpg

from bench.harness import LoadResult, wrk

_SAMPLE_S = 0.01
_CONNECTIONS = 16


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def live_lag(
    url: str, port: int, org_id: str, *, rate: float, seconds: int, run: str
) -> dict[str, float | bool]:
    conn = await asyncpg.connect(url)
    try:
        start_head = await conn.fetchval("SELECT position FROM event_log_head")
        samples: list[tuple[float, int, int]] = []
        # Each connection pauses between requests so that together they offer about `rate` per second.
        delay_ms = _CONNECTIONS * 1000 / rate
        load = asyncio.create_task(
            asyncio.to_thread(
                wrk,
                port,
                org_id=org_id,
                run=run,
                seconds=seconds,
                connections=_CONNECTIONS,
                delay_ms=delay_ms,
            )
        )
        drained_by = None
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT position FROM event_log_head) AS head,"
                " (SELECT min(position) FROM projection_checkpoints) AS projected"
            )
            now = time.perf_counter()
            samples.append((now, row["head"], row["projected"]))
            if load.done():
                drained_by = drained_by or now + 10
                if row["projected"] >= row["head"] or now > drained_by:
                    break
            await asyncio.sleep(_SAMPLE_S)
        result: LoadResult = await load
    finally:
        await conn.close()

    times = [t for t, _, _ in samples]
    heads = [h for _, h, _ in samples]
    projected = [p for _, _, p in samples]
    latencies = []
    for position in range(start_head + 1, heads[-1] + 1):
        appended = times[bisect.bisect_left(heads, position)]
        index = bisect.bisect_left(projected, position)
        if index < len(times):
            latencies.append(times[index] - appended)
    # Lag in events over the first and the last tenth of the run: growing means falling behind.
    tenth = max(1, len(samples) // 10)
    early = statistics.mean(h - p for _, h, p in samples[:tenth])
    late = statistics.mean(h - p for _, h, p in samples[-2 * tenth : -tenth] or samples[-tenth:])
    return {
        "offered_per_s": rate,
        "achieved_per_s": result.requests_per_s,
        "errors": result.errors,
        "append_to_row_p50_ms": 1000 * _percentile(latencies, 0.50),
        "append_to_row_p99_ms": 1000 * _percentile(latencies, 0.99),
        "max_lag_events": max(h - p for _, h, p in samples),
        "lag_early_events": early,
        "lag_late_events": late,
        "kept_up": bool(latencies) and _percentile(latencies, 0.99) < 1.0 and late <= max(early * 2, 50),
    }
