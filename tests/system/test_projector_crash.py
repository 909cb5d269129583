"""`mightycall-ingest project` killed with SIGKILL again and again while events keep arriving: each
restart resumes from the committed checkpoint, and the tables end exactly as a rebuild makes them.

Each kill lands on a line the projector logs (at DEBUG, enabled for these runs only) once it has written
part of a batch: the kill is timed by the projector's own progress, not by a clock. Whether it beat the
batch's commit is read from the checkpoint afterwards, and some kills must have."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sys
import uuid
from pathlib import Path

import asyncpg

from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, rebuilt_rows, table_rows

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6
MID_BATCH_KILLS = 3
MAX_KILLS = 40  # a guard: each kill has a fair chance of beating its batch's commit
NO_HANG_S = 60
ROWS_WRITTEN = b"projector rows written"
# The projector as the command runs it, with the line it logs between writing rows and committing them.
_DEBUG_PROJECTOR = (
    "import logging, sys; from service.cli import main;"
    " logging.getLogger('mightycall.projector').setLevel(logging.DEBUG); sys.exit(main(['project']))"
)


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


async def _start_projector(db_url: str, *, debug: bool = False) -> asyncio.subprocess.Process:
    command = ["-c", _DEBUG_PROJECTOR] if debug else ["-m", "service.cli", "project"]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_until(projector: asyncio.subprocess.Process, marker: bytes, nth: int = 1) -> bytes:
    """The `nth` line of the projector's log holding `marker`; fails if the log ends first (the
    projector exited) or nothing comes for NO_HANG_S."""
    assert projector.stderr is not None
    last = collections.deque(maxlen=20)
    seen = 0
    while True:
        line = await asyncio.wait_for(projector.stderr.readline(), NO_HANG_S)
        if not line:
            code = await asyncio.wait_for(projector.wait(), NO_HANG_S)
            tail = b"".join(last).decode(errors="replace")
            raise AssertionError(f"the projector exited ({code}) before logging {marker!r}:\n{tail}")
        last.append(line)
        if marker in line:
            seen += 1
            if seen == nth:
                return line


async def _keep_appending(db_url: str, org_id: uuid.UUID, start: int, stop: asyncio.Event) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        n = start
        while not stop.is_set():
            await append_payloads(conn, org_id, _webhooks(n))
            n += 1
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def _positions(conn) -> dict[str, int]:
    return {s.name: s.position for s in await projection_statuses(conn)}


async def test_projector_killed_mid_batch_resumes_without_loss_or_double_apply(db_url, conn, org_id):
    rng = random.Random(7)
    for start in range(0, 1500, 50):
        await append_payloads(conn, org_id, [w for n in range(start, start + 50) for w in _webhooks(n)])
    previous = await _positions(conn)
    kills: list[tuple[str, int, int]] = []  # (projection, last event written, its checkpoint after)
    stop_appending = asyncio.Event()
    appending = asyncio.create_task(_keep_appending(db_url, org_id, 1500, stop_appending))
    try:
        while len(kills) < KILLS or sum(at < through for _, through, at in kills) < MID_BATCH_KILLS:
            assert len(kills) < MAX_KILLS, f"too few kills landed before their batch's commit: {kills}"
            projector = await _start_projector(db_url, debug=True)
            try:
                # Four projections write their part of each batch: anywhere in the first two batches.
                line = await _read_until(projector, ROWS_WRITTEN, nth=rng.randint(1, 8))
            finally:
                if projector.returncode is None:
                    projector.kill()
                await asyncio.wait_for(projector.communicate(), NO_HANG_S)
            written = json.loads(line)
            positions = await _positions(conn)
            kills.append((written["projection"], written["through"], positions[written["projection"]]))
            # A checkpoint never goes back, and nothing is applied beyond it (compared below).
            assert all(positions[name] >= previous[name] for name in positions)
            previous = positions
    finally:
        stop_appending.set()
        await appending
    assert any(previous.values()), "the projector never got to commit a batch"

    projector = await _start_projector(db_url)
    head = await conn.fetchval("SELECT position FROM event_log_head")
    try:
        # Its signal handlers are in place once it says it leads.
        await _read_until(projector, b"projector active")
        for _ in range(NO_HANG_S * 10):
            if set((await _positions(conn)).values()) == {head}:
                break
            await asyncio.sleep(0.1)
    finally:
        if projector.returncode is None:
            projector.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(projector.communicate(), NO_HANG_S)
    assert projector.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr
    assert set((await _positions(conn)).values()) == {head}

    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(
            conn, projection, batch_size=500
        ), projection.name
