"""`mightycall-ingest project` killed with SIGKILL again and again while events keep arriving: each
restart resumes from the committed checkpoint, and the tables end exactly as a rebuild makes them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, rebuilt_rows, table_rows

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6
NO_HANG_S = 60


def _webhooks(n: int) -> list[tuple[str, dict]]:
    stamp = f"2024-02-{1 + n % 28:02d}T{n % 24:02d}:00:00Z"
    return [
        ("calls", {**SEED["calls"], "call_id": f"call-{n % 300}", "timestamp": stamp, "duration": n}),
        (
            "recordings",
            {**SEED["recordings"], "call_id": f"call-{n % 300}", "timestamp": stamp, "size_bytes": n},
        ),
        ("sms", {**SEED["sms"], "sms_id": f"sms-{n % 400}", "timestamp": stamp, "status": f"s{n}"}),
        ("reports", {**SEED["reports"], "report_id": f"rep-{n % 90}", "timestamp": stamp}),
    ]


async def _start_projector(db_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        "project",
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _positions(conn) -> dict[str, int]:
    return {s.name: s.position for s in await projection_statuses(conn)}


async def test_projector_killed_mid_batch_resumes_without_loss_or_double_apply(db_url, conn, org_id):
    rng = random.Random(7)
    for start in range(0, 1500, 50):
        await append_payloads(conn, org_id, [w for n in range(start, start + 50) for w in _webhooks(n)])
    n = 1500
    previous = await _positions(conn)
    for _ in range(KILLS):
        projector = await _start_projector(db_url)
        deadline = asyncio.get_running_loop().time() + rng.uniform(0.8, 2.0)
        while asyncio.get_running_loop().time() < deadline:
            await append_payloads(conn, org_id, _webhooks(n))
            n += 1
            await asyncio.sleep(0.01)
        projector.kill()
        await projector.wait()
        positions = await _positions(conn)
        # A checkpoint never goes back, and nothing is applied beyond it (compared below).
        assert all(positions[name] >= previous[name] for name in positions)
        previous = positions
    assert any(previous.values()), "the projector never got to commit a batch"

    projector = await _start_projector(db_url)
    head = await conn.fetchval("SELECT position FROM event_log_head")
    try:
        # Its signal handlers are in place once it says it leads.
        while b"projector active" not in await asyncio.wait_for(projector.stderr.readline(), NO_HANG_S):
            pass
        for _ in range(NO_HANG_S * 10):
            if set((await _positions(conn)).values()) == {head}:
                break
            await asyncio.sleep(0.1)
    finally:
        projector.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(projector.communicate(), NO_HANG_S)
    assert projector.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr
    assert set((await _positions(conn)).values()) == {head}

    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(
            conn, projection, batch_size=500
        ), projection.name
