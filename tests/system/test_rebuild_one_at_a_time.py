"""One rebuild of a projection at a time: a second is refused in one line naming the first, the first
loses nothing, and a rebuild that died blocks nothing.

The first rebuild is paused mid-fill by locks it needs, taken by the test: `phone_numbers` (every
replay reads it before its first write) holds it until its shadow table exists, and then a ROW
EXCLUSIVE lock on that shadow lets it write every row up to the head but not build the shadow's
index, the step that follows.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from projections.rebuild.lock import RebuildRunning
from projections.rebuild.rebuild import SHADOW_SUFFIX, rebuild
from projections.registry import PROJECTIONS
from tests.support.cli import run_cli, start_cli
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

SHADOW = f"calls{SHADOW_SUFFIX}"
CONDITION_BOUND = 3000  # polls of 10 ms: a bound on a wait for a condition, not a duration asserted


def _calls(numbers: range) -> list[tuple[str, dict]]:
    return [
        (
            "calls",
            {
                **SEED["calls"],
                # Below 1000, 150 calls again and again; from 1000 on, a new call each.
                "call_id": f"call-{n % 150 if n < 1000 else n}",
                "duration": n,
                "status": f"s{n}",
            },
        )
        for n in numbers
    ]


async def _until(conn: asyncpg.Connection, query: str, *args: object) -> None:
    for _ in range(CONDITION_BOUND):
        if await conn.fetchval(query, *args):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never true: {query}")


_WAITING_ON = "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted AND relation = to_regclass($1))"
_SHADOW_EXISTS = "SELECT to_regclass($1) IS NOT NULL"


@asynccontextmanager
async def _paused_mid_fill(db_url: str, conn: asyncpg.Connection, start) -> AsyncIterator[object]:
    """Start a rebuild of calls with `start()` and hold it once its shadow holds every row up to the
    head; let it go on at the end of the block. Yields what `start()` returned."""
    phones, shadow = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        phones_lock = phones.transaction()
        await phones_lock.start()
        await phones.execute("LOCK TABLE phone_numbers IN ACCESS EXCLUSIVE MODE")
        started = await start()
        await _until(conn, _SHADOW_EXISTS, SHADOW)
        await _until(conn, _WAITING_ON, "phone_numbers")
        shadow_lock = shadow.transaction()
        await shadow_lock.start()
        await shadow.execute(f'LOCK TABLE "{SHADOW}" IN ROW EXCLUSIVE MODE')
        await phones_lock.commit()
        # The index build waits for the shadow's lock: every row up to the head is in.
        await _until(conn, _WAITING_ON, SHADOW)
        yield started
        await shadow_lock.commit()
    finally:
        await phones.close()
        await shadow.close()


async def test_a_second_rebuild_during_a_fill_is_refused_and_the_first_loses_no_row(
    db_url, pool, conn, org_id
):
    await append_payloads(conn, org_id, _calls(range(300)))
    await catch_up(pool)
    projection = PROJECTIONS["calls"]

    async def first_rebuild() -> asyncio.Task[int]:
        return asyncio.create_task(rebuild(db_url, projection, region=REGION, batch_size=10))

    async with _paused_mid_fill(db_url, conn, first_rebuild) as first:
        assert await conn.fetchval(f'SELECT count(*) FROM "{SHADOW}"') == 150
        # More events while it waits: new calls and newer versions of those already in the shadow.
        await append_payloads(conn, org_id, _calls(range(300, 400)) + _calls(range(1000, 1080)))
        second = asyncio.create_task(rebuild(db_url, projection, region=REGION, batch_size=10))
        # Refused at once; without the lock, its DROP of the shadow would queue behind the pause.
        for _ in range(CONDITION_BOUND):
            if second.done() or await conn.fetchval(
                "SELECT count(*) > 1 FROM pg_locks WHERE NOT granted AND relation = to_regclass($1)", SHADOW
            ):
                break
            await asyncio.sleep(0.01)
    outcomes = await asyncio.gather(first, second, return_exceptions=True)

    head = await conn.fetchval("SELECT position FROM event_log_head")
    assert outcomes[0] == head
    assert await table_rows(conn, "calls") == await rebuilt_rows(conn, projection)
    assert await conn.fetchval("SELECT count(*) FROM calls") == 230
    assert isinstance(outcomes[1], RebuildRunning)
    assert str(outcomes[1]).startswith(
        f"a rebuild of calls is already running: mightycall-ingest/{os.getpid()}"
    )


async def test_the_command_refuses_a_second_rebuild_in_one_line_naming_the_first(db_url, pool, conn, org_id):
    await append_payloads(conn, org_id, _calls(range(200)))
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(5)])
    await catch_up(pool)
    sms_before = await table_rows(conn, "mightycall_sms_messages")

    async def first_rebuild() -> asyncio.Task[int]:
        return asyncio.create_task(rebuild(db_url, PROJECTIONS["calls"], region=REGION, batch_size=10))

    async with _paused_mid_fill(db_url, conn, first_rebuild) as first:
        holder = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            f"mightycall-ingest/{os.getpid()} rebuild calls",
        )
        sms_oid = await conn.fetchval("SELECT 'mightycall_sms_messages'::regclass::oid")
        one, _, refused = await run_cli(db_url, "rebuild", "calls")
        everything, _, refused_all = await run_cli(db_url, "rebuild", "--all")
        # --all was refused before it touched any table: no shadow of sms, the same sms table.
        assert await conn.fetchval(_SHADOW_EXISTS, "mightycall_sms_messages__rebuild") is False
        assert await conn.fetchval("SELECT 'mightycall_sms_messages'::regclass::oid") == sms_oid
        # Another projection's rebuild is not held up.
        other, out, err = await run_cli(db_url, "rebuild", "sms")
    await first

    assert holder is not None
    for code, err_text in [(one, refused), (everything, refused_all)]:
        assert code == 1
        assert len(err_text.splitlines()) == 1
        assert err_text.startswith(
            f"mightycall-ingest: a rebuild of calls is already running: mightycall-ingest/{os.getpid()} "
            f"rebuild calls (server pid {holder}, from "
        )
        assert " since 20" in err_text
    assert other == 0, err
    assert out.decode().strip().startswith("sms: rebuilt up to event")
    assert await conn.fetchval("SELECT 'mightycall_sms_messages'::regclass::oid") != sms_oid
    assert await table_rows(conn, "mightycall_sms_messages") == sms_before
    # Once the first is done, the next one runs.
    assert (await run_cli(db_url, "rebuild", "--all"))[0] == 0


async def test_a_rebuild_that_died_mid_fill_blocks_nothing_and_the_next_one_starts_over(
    db_url, pool, conn, org_id
):
    await append_payloads(conn, org_id, _calls(range(200)))
    await catch_up(pool)
    before = await table_rows(conn, "calls")

    async def killed_rebuild() -> asyncio.subprocess.Process:
        return await start_cli("rebuild", "calls", env={"DATABASE_URL": db_url}, new_session=True)

    async with _paused_mid_fill(db_url, conn, killed_rebuild) as process:
        assert isinstance(process, asyncio.subprocess.Process)
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    # Its lock went with its connection (the server notices the connection is gone).
    await _until(
        conn, "SELECT NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2)"
    )
    assert await conn.fetchval(_SHADOW_EXISTS, SHADOW)

    code, _, err = await run_cli(db_url, "rebuild", "calls")

    assert code == 0, err
    assert await table_rows(conn, "calls") == before == await rebuilt_rows(conn, PROJECTIONS["calls"])
    assert not await conn.fetchval(_SHADOW_EXISTS, SHADOW)


async def test_a_rebuild_that_loses_its_lock_connection_stops_and_swaps_nothing_in(
    db_url, pool, conn, org_id
):
    await append_payloads(conn, org_id, _calls(range(200)))
    await catch_up(pool)
    before = await table_rows(conn, "calls")
    table = await conn.fetchval("SELECT 'calls'::regclass::oid")

    async def first_rebuild() -> asyncio.Task[int]:
        return asyncio.create_task(rebuild(db_url, PROJECTIONS["calls"], region=REGION, batch_size=10))

    async with _paused_mid_fill(db_url, conn, first_rebuild) as first:
        # An operator ends the session that holds the lock; from then on another rebuild could start.
        assert await conn.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"mightycall-ingest/{os.getpid()} rebuild calls",
        )
        # It stops by itself while still paused (a bound against a hang, not a duration asserted).
        await asyncio.wait([first], timeout=60)
        assert first.done()
    with pytest.raises(RebuildRunning, match=r"^the rebuild of calls lost the connection that held its lock"):
        await first

    assert await conn.fetchval("SELECT 'calls'::regclass::oid") == table
    assert await table_rows(conn, "calls") == before
