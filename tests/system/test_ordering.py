"""Positions are gapless and ascending in commit order, so "id > last seen" never skips an event.

Several processes append at once, each committing late and sometimes rolling back, while a reader
follows the log the way the projector and an auditor's export do.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg

from service.eventlog.verify import verify_log

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
TRANSACTIONS_PER_WRITER = 40


async def _follow(url: str, done: asyncio.Event) -> tuple[list[int], int]:
    """Read "id > last" until the writers are done; returns every id seen and how many polls saw rows."""
    conn = await asyncpg.connect(url)
    seen: list[int] = []
    fruitful_polls = 0
    try:
        while True:
            finished = done.is_set()
            last = seen[-1] if seen else 0
            ids = [
                r["id"] for r in await conn.fetch("SELECT id FROM event_log WHERE id > $1 ORDER BY id", last)
            ]
            # Whatever is visible right after `last` must continue it exactly: a later id visible before
            # an earlier one would be skipped for good by this reader.
            assert ids == list(range(last + 1, last + 1 + len(ids))), (last, ids[:5])
            if ids:
                fruitful_polls += 1
            seen.extend(ids)
            if finished:
                return seen, fruitful_polls
            await asyncio.sleep(0.001)
    finally:
        await conn.close()


async def _writer(url: str, org_id: object, seed: int) -> list[dict[str, object]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.append_worker",
        url,
        str(org_id),
        str(TRANSACTIONS_PER_WRITER),
        str(seed),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_concurrent_delayed_commits_from_several_processes_are_read_in_order(db_url, conn, org_id):
    done = asyncio.Event()
    reader = asyncio.create_task(_follow(db_url, done))
    committed_per_writer = await asyncio.gather(*(_writer(db_url, org_id, seed) for seed in range(WRITERS)))
    done.set()
    seen, fruitful_polls = await reader

    committed = [event for events in committed_per_writer for event in events]
    # Every writer committed something, and the reader saw the log grow while they ran.
    assert all(committed_per_writer)
    assert fruitful_polls > 1
    # Gapless: exactly 1..N, each committed event once, nothing else.
    assert seen == list(range(1, len(committed) + 1))
    assert sorted(e["id"] for e in committed) == seen
    rows = await conn.fetch("SELECT id, encode(body_sha256, 'hex') AS sha FROM event_log ORDER BY id")
    assert {r["id"]: r["sha"] for r in rows} == {e["id"]: e["sha256"] for e in committed}
    # Within one writer, later commits got later positions.
    for events in committed_per_writer:
        ids = [e["id"] for e in events]
        assert ids == sorted(ids)
    # And the hash chain, built by whichever process held the head, links every event to the one before.
    verification = await verify_log(conn)
    assert (verification.ok, verification.head_id) == (True, len(committed))
