"""Rebuild speed: all four projections rebuilt from a large log by `mightycall-ingest rebuild --all`,
as an engineer runs it, beside a bare ceiling that only streams the log with a server-side cursor and
COPYs one row per event. Each runs in its own process, so its peak RSS is its own (with its
children's: a rebuild uses one process per core).

    DATABASE_URL=... python -m bench.rebuild_bench     # the ceiling alone
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import msgspec
import psutil

from bench.harness import ROOT

_CHUNK = 10_000
_COMMANDS = {
    "rebuild": [sys.executable, "-m", "service.cli", "rebuild", "--all"],
    "ceiling": [sys.executable, "-m", "bench.rebuild_bench"],
}


async def _ceiling(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS bench_rebuild_ceiling;"
            "CREATE TABLE bench_rebuild_ceiling (id bigint, org_id uuid, external_id text, kind text)"
        )
        decode = msgspec.json.Decoder().decode
        async with conn.transaction():
            records: list[tuple[object, ...]] = []
            async for row in conn.cursor(
                "SELECT id, org_id, kind, body FROM event_log ORDER BY id", prefetch=_CHUNK
            ):
                payload = decode(row["body"])
                records.append(
                    (row["id"], row["org_id"], payload.get("call_id") or payload.get("sms_id"), row["kind"])
                )
                if len(records) >= _CHUNK:
                    await conn.copy_records_to_table("bench_rebuild_ceiling", records=records)
                    records.clear()
            await conn.copy_records_to_table("bench_rebuild_ceiling", records=records)
        await conn.execute("DROP TABLE bench_rebuild_ceiling")
    finally:
        await conn.close()


def measure(what: str, url: str, events: int, *, checkout: Path = ROOT) -> dict[str, float]:
    """Run one rebuild (or the ceiling) in a child process, with `checkout`'s code: events per second,
    and the peak of the resident memory of that process and its own children together (a rebuild fills
    some tables in child processes), sampled every 20 ms."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        # Its progress lines would crowd the bench's output; its errors are shown if it fails.
        child = subprocess.Popen(
            _COMMANDS[what],
            # `python -m` puts the working directory first on the path: the checkout's own code runs.
            cwd=checkout,
            # As an installed package runs: with its bytecode cached, which a setting that forbids
            # writing it would turn into compiling every module at every start.
            env={**_without_bytecode_ban(os.environ), "DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(child.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        if child.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace")[-5000:])
            raise RuntimeError(f"{what} failed with status {child.returncode}")
    return {"events_per_s": events / elapsed, "seconds": elapsed, "peak_rss_mb": peak / 2**20}


def _without_bytecode_ban(environment: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name != "PYTHONDONTWRITEBYTECODE"}


def _tree_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for each in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += each.memory_info().rss
    return total


if __name__ == "__main__":
    asyncio.run(_ceiling(os.environ["DATABASE_URL"]))
