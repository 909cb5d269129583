"""Pieces the benchmark is made of: a throwaway database, servers started and stopped, wrk runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SECRET = "bench-webhook-secret-0123456789"  # noqa: S105 - a throwaway server's, on loopback


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def as_json(self) -> dict[str, float | int]:
        return asdict(self)


def median_result(results: Sequence[LoadResult]) -> LoadResult:
    """Each figure the median of the runs (errors: the total)."""
    return LoadResult(
        requests_per_s=statistics.median(r.requests_per_s for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
    )


@contextlib.contextmanager
def bench_database() -> Iterator[str]:
    """A fresh embedded PostgreSQL in a temporary folder, migrated; yields its URL."""
    sys.path.insert(0, str(ROOT))
    from service.database.embedded import embedded_server

    folder = Path(tempfile.mkdtemp(prefix="mightycall-bench-"))
    server = embedded_server(folder / "pgdata", cleanup_mode="delete")
    url = server.get_uri("postgres")
    cli("migrate", database_url=url)
    try:
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def cli(*args: str, database_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@contextlib.contextmanager
def server(
    command: Sequence[str], port: int, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[None]:
    """Run `command` until the block ends; it must answer on 127.0.0.1:`port` within 30 s."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers too are stopped with it
    )
    try:
        _wait_until_listening(port, process)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered (404 or 405 are fine)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within 30 s")


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    port: int, *, org_id: str, run: str, seconds: int, connections: int = 64, delay_ms: float = 0
) -> LoadResult:
    """POST distinct seed-shaped webhooks of all four kinds (bench/post.lua) with `connections`
    keep-alive connections from one wrk thread."""
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(BENCH / "post.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={**os.environ, "ORG": org_id, "SECRET": SECRET, "RUN": run, "DELAY_MS": str(delay_ms)},
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    latencies = {m[0]: float(m[1]) * _UNIT_MS[m[2]] for m in _LATENCY.findall(out)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return LoadResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=latencies["50"],
        p99_ms=latencies["99"],
        requests=requests,
        errors=errors,
    )
