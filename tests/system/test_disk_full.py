"""The disk under the log fills up: appends are refused with a clean 503, nothing is half-written, the
service stays up, and once there is room again the same bytes are accepted. The disk under a
projection's table fills up: the live projector holds that projection back, never stops it, and writes
its rows once there is room again, with no restart.

The table is moved to a tablespace on a 1 MB tmpfs, so "No space left on device" is real, from the
kernel, not simulated. Mounting needs root and a PostgreSQL on this machine; elsewhere the test is
skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from projections.status import projection_statuses
from service.app import create_app
from service.eventlog.verify import verify_log
from tests.support.http import bearer
from tests.support.payloads import PATHS, SEED, body_for
from tests.support.projecting import append_payloads, live_projector
from tests.support.waiting import poll_until

TABLESPACE = "mightycall_test_small"
MAX_ATTEMPTS = 100  # 1 MB fills after a handful of 200 KB bodies; a guard against looping for ever


@pytest.fixture
def small_mount() -> Iterator[Path]:
    """A 1 MB tmpfs that PostgreSQL's system user may enter (pytest's tmp_path is private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="mightycall-disk-full-"))
    parent.chmod(0o755)
    mount_point = parent / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        shutil.rmtree(parent)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        shutil.rmtree(parent)


@pytest.fixture
async def small_tablespace(conn: asyncpg.Connection, small_mount: Path) -> AsyncIterator[None]:
    """The tablespace TABLESPACE on the 1 MB filesystem; whatever a test moves there it moves back."""
    owner = await asyncio.to_thread(_owner_of, Path(await conn.fetchval("SHOW data_directory")))
    if owner is None:
        pytest.skip("PostgreSQL runs on another machine: its disk cannot be filled from here")
    os.chown(small_mount, *owner)
    await conn.execute(f"CREATE TABLESPACE {TABLESPACE} LOCATION '{small_mount}'")
    try:
        yield
    finally:
        await conn.execute(f"DROP TABLESPACE {TABLESPACE}")


@pytest.fixture
async def small_disk(conn: asyncpg.Connection, small_tablespace: None) -> AsyncIterator[None]:
    """`event_log` (with its TOAST table) on the 1 MB filesystem, for the duration of the test."""
    await conn.execute(f"ALTER TABLE event_log SET TABLESPACE {TABLESPACE}")
    try:
        yield
    finally:
        await conn.execute("ALTER TABLE event_log SET TABLESPACE pg_default")


@pytest.fixture
async def calls_on_a_full_disk(conn: asyncpg.Connection, small_tablespace: None) -> AsyncIterator[None]:
    """`calls` on the 1 MB filesystem, which a table `filler` there has filled to the last page."""
    await conn.execute(f"ALTER TABLE calls SET TABLESPACE {TABLESPACE}")
    try:
        await conn.execute(f"CREATE TABLE filler (t text) TABLESPACE {TABLESPACE}")
        await conn.execute("ALTER TABLE filler ALTER COLUMN t SET STORAGE EXTERNAL")
        # Large rows first, then smaller ones, until not even a small one finds room.
        for size in (100_000, 10_000, 1_000, 10):
            for _ in range(MAX_ATTEMPTS):
                try:
                    await conn.execute(
                        "INSERT INTO filler SELECT string_agg(md5(random()::text), '') "
                        "FROM generate_series(1, $1::int / 32)",
                        size,
                    )
                except asyncpg.DiskFullError:
                    break
        yield
    finally:
        await conn.execute("DROP TABLE IF EXISTS filler")
        await conn.execute("ALTER TABLE calls SET TABLESPACE pg_default")


def _owner_of(path: Path) -> tuple[int, int] | None:
    if not path.exists():
        return None
    stat = path.stat()
    return stat.st_uid, stat.st_gid


def _incompressible(org_id, n: int) -> bytes:
    # Random text defeats TOAST's compression, so each body takes its size on disk.
    return body_for("sms", org_id, sms_id=f"sms-{n}", message=secrets.token_hex(100_000))


async def _head(conn: asyncpg.Connection) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    return row["position"], bytes(row["hash"])


async def test_a_full_disk_is_a_clean_503_and_the_service_recovers(
    settings, db_url, conn, org_id, small_disk
):
    async with AsyncTestClient(app=create_app(settings, db_url)) as client:
        refused = None
        for n in range(MAX_ATTEMPTS):
            before = await _head(conn)
            response = await client.post(PATHS["sms"], content=_incompressible(org_id, n), headers=bearer())
            if response.status_code != 202:
                refused = (n, response)
                break
        assert refused is not None, "the small disk never filled up"
        n, response = refused
        assert response.status_code == 503, response.text
        assert response.json() == {
            "error": "database_unavailable",
            "details": "the database cannot complete the write now; retry later",
        }
        assert response.headers["retry-after"]
        # Nothing half-written: the head did not move, every row has its body, the chain holds.
        assert await _head(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM event_log") == n == before[0]
        assert (await verify_log(conn)).ok
        assert (await client.get("/health")).status_code == 200

        # Room again (the operator grows the disk; here the log moves back), and the retry is accepted.
        await conn.execute("ALTER TABLE event_log SET TABLESPACE pg_default")
        retry = await client.post(PATHS["sms"], content=_incompressible(org_id, n), headers=bearer())
        assert retry.status_code == 202, retry.text
        assert retry.json()["event_id"] == n + 1
    assert (await verify_log(conn)).ok


async def test_a_full_disk_under_a_projection_holds_it_back_until_there_is_room(
    db_url, conn, org_id, calls_on_a_full_disk
):
    async with live_projector(db_url) as (projector, task):
        await append_payloads(conn, org_id, [("calls", {**SEED["calls"], "call_id": "full"})])
        await poll_until(lambda: _retried_on_a_full_disk(conn, 2), "retries counted while the disk is full")
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0

        await conn.execute("DROP TABLE filler")  # room again
        await poll_until(
            lambda: conn.fetchval("SELECT count(*) = 1 FROM calls WHERE call_id = 'full'"),
            "the row once there is room",
        )
        assert [s.error for s in await projection_statuses(conn)] == [None] * 4
        assert not task.done() and projector.active


async def _retried_on_a_full_disk(conn: asyncpg.Connection, times: int) -> bool:
    """Whether `calls` was retried `times` on a full disk; fails at once if it was stopped instead."""
    assert [(s.name, s.error) for s in await projection_statuses(conn) if s.error] == []
    retries = await conn.fetchval(
        "SELECT retries FROM projection_retries WHERE name = 'calls' AND reason = 'DiskFullError'"
    )
    return (retries or 0) >= times
