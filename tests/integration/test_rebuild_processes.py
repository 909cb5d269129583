"""A rebuild's replays split over processes: which projections go together, a group filled early
catching up before its swap, and a child process never outliving the rebuild that started it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psutil
import pytest

from projections.model import Projection
from projections.rebuild import rebuild as rebuild_module
from projections.rebuild.fill import SWAP_BACKLOG, Shadow
from projections.rebuild.fill_process import FillProcess
from projections.rebuild.lock import holding_rebuild_locks
from projections.rebuild.rebuild import _groups, _swap_in, build_shadow, rebuild_many
from projections.registry import PROJECTIONS
from projections.runner import head_position
from service.database.pool import create_pool
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, table_rows


def _names(groups: list[list[Projection]]) -> list[list[str]]:
    return [[projection.name for projection in group] for group in groups]


def test_projections_that_read_the_same_kinds_share_a_replay_and_the_others_have_their_own():
    projections = list(PROJECTIONS.values())

    # Recordings read call events too: one replay reads them for both. The biggest group comes first.
    assert _names(_groups(projections)) == [["calls", "recordings"], ["sms"], ["reports"]]
    assert _names(_groups(projections[::-1])) == [["recordings", "calls"], ["reports"], ["sms"]]


@pytest.mark.parametrize("processes", [1, 2])
async def test_each_replay_reports_its_start_when_a_process_takes_it_up(db_url, conn, org_id, processes):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(25)])
    head = await head_position(conn)
    reports: list[tuple[str, int, int]] = []

    await rebuild_many(
        db_url,
        [PROJECTIONS["sms"], PROJECTIONS["reports"], PROJECTIONS["calls"]],
        region=REGION,
        batch_size=10,
        progress=lambda names, position, reached_head: reports.append((names, position, reached_head)),
        processes=processes,
    )

    # Each replay reports its start, at 0 of the head, before its first batch; its last report is the head.
    starts = [names for names, position, _ in reports if position == 0]
    assert sorted(starts) == ["calls", "reports", "sms"]
    for names in starts:
        mine = [(position, reached_head) for n, position, reached_head in reports if n == names]
        assert mine[0] == (0, head) and mine[-1] == (head, head)
    if processes == 1:
        # One after the other: each starts once the one before has reached the head.
        started_and_ended = [n for n, position, _ in reports if position in (0, head)][:6]
        assert started_and_ended == ["sms"] * 2 + ["reports"] * 2 + ["calls"] * 2


def _is_filling(process: psutil.Process) -> bool:
    try:
        return "projections.rebuild.fill_process" in process.cmdline()
    except psutil.NoSuchProcess:
        return False


async def test_a_cancelled_rebuild_kills_its_child_process_and_leaves_the_live_tables(db_url, conn, org_id):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(400)])
    before = await table_rows(conn, "mightycall_sms_messages")
    here = psutil.Process()
    # One event a batch: the child is far from done when it is seen.
    rebuilding = asyncio.create_task(
        rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=1, processes=2)
    )
    children: list[psutil.Process] = []
    for _ in range(1000):
        children = [child for child in here.children() if _is_filling(child)]
        if children or rebuilding.done():
            break
        await asyncio.sleep(0.01)
    assert len(children) == 1

    rebuilding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rebuilding

    assert not children[0].is_running()
    assert await table_rows(conn, "mightycall_sms_messages") == before


async def test_a_part_filled_long_before_the_head_catches_up_and_swaps_in_every_event(db_url, conn, org_id):
    def sms(n: int) -> tuple[str, dict]:
        return ("sms", {**SEED["sms"], "sms_id": f"sms-{n}", "status": str(n)})

    await append_payloads(conn, org_id, [sms(n) for n in range(50)])
    projection = PROJECTIONS["sms"]
    table, position = await build_shadow(conn, projection, region=REGION, batch_size=10, progress=None)
    # While the other parts were still being filled, the log moved on by more than a swap applies.
    await append_payloads(conn, org_id, [sms(n) for n in range(50, 50 + 2 * SWAP_BACKLOG)])
    head = await head_position(conn)

    async with holding_rebuild_locks(db_url, ["sms"]) as lock:
        swapped = await _swap_in(
            conn,
            Shadow(projection, table, []),
            position,
            lock_holder=lock.get_server_pid(),
            region=REGION,
            batch_size=300,
            progress=None,
        )

    assert (position, swapped) == (50, head)
    rebuilt = await table_rows(conn, "mightycall_sms_messages")
    pool = await create_pool(db_url)
    try:
        await conn.execute("TRUNCATE mightycall_sms_messages")
        await conn.execute("UPDATE projection_checkpoints SET position = 0 WHERE name = 'sms'")
        await catch_up(pool, projections=[projection])
    finally:
        await pool.close()
    assert rebuilt == await table_rows(conn, "mightycall_sms_messages")
    assert len(rebuilt) == head


async def test_a_child_that_dies_of_anything_else_is_an_error_naming_what_it_was_filling(
    db_url, conn, org_id, capfd
):
    await append_payloads(conn, org_id, [("sms", SEED["sms"])])
    # A table that does not exist: the child's first write fails with an error of the database's.
    missing = Shadow(PROJECTIONS["sms"], "no_such_table__rebuild", [])

    with pytest.raises(RuntimeError, match=r"^filling sms failed in a child process \(exit status 1\)"):
        async with FillProcess() as child:
            await child.fill(
                db_url, [missing], region=REGION, batch_size=10, on_batch=lambda reached, head: None
            )

    # Its traceback went to the parent's standard error, where the message points.
    assert "no_such_table__rebuild" in capfd.readouterr().err


def _counting_children(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The commands of the child processes started from now on (they are still started)."""
    started: list[tuple[str, ...]] = []
    spawn = asyncio.create_subprocess_exec

    async def counting(*command: str, **options: object) -> asyncio.subprocess.Process:
        started.append(command)
        return await spawn(*command, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", counting)
    return started


async def test_one_child_process_fills_one_group_after_another(db_url, conn, org_id, monkeypatch):
    payloads = [
        (kind, {**SEED[kind], "call_id": f"c-{n}", "sms_id": f"s-{n}"}) for n in range(5) for kind in SEED
    ]
    await append_payloads(conn, org_id, payloads)
    started = _counting_children(monkeypatch)
    # This process's replay (the first group's) waits until the child has filled the other two, so the
    # child is sure to be the one that takes both.
    others_filled = asyncio.Event()
    fill_here = rebuild_module.fill

    async def fill_once_the_others_are_filled(*args: Any, **kwargs: Any) -> int:
        await others_filled.wait()
        return await fill_here(*args, **kwargs)

    def progress(names: str, position: int, head: int) -> None:
        if names == "reports" and position == head:
            others_filled.set()

    monkeypatch.setattr(rebuild_module, "fill", fill_once_the_others_are_filled)

    # Three groups (calls and recordings, sms, reports) and two processes: this one and one child, which
    # takes the second group and then the third.
    await rebuild_many(
        db_url, PROJECTIONS.values(), region=REGION, batch_size=4, processes=2, progress=progress
    )

    assert len(started) == 1
    rebuilt = {name: await table_rows(conn, p.table.name) for name, p in PROJECTIONS.items()}
    pool = await create_pool(db_url)
    try:
        for projection in PROJECTIONS.values():
            await conn.execute(f"TRUNCATE {projection.table.name}")
        await conn.execute("UPDATE projection_checkpoints SET position = 0")
        await catch_up(pool, projections=list(PROJECTIONS.values()))
    finally:
        await pool.close()
    assert rebuilt == {name: await table_rows(conn, p.table.name) for name, p in PROJECTIONS.items()}
    assert all(rebuilt.values())


async def test_a_small_log_is_rebuilt_in_this_process_alone_and_a_larger_one_in_one_per_core(
    db_url, conn, org_id, monkeypatch
):
    await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(6)])
    started = _counting_children(monkeypatch)

    monkeypatch.setattr(rebuild_module, "LOG_WORTH_A_PROCESS", 7)
    await rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=4)
    assert started == []

    monkeypatch.setattr(rebuild_module, "LOG_WORTH_A_PROCESS", 6)
    await rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=4)
    assert len(started) == min(len(os.sched_getaffinity(0)), 3) - 1
    assert len(await table_rows(conn, "mightycall_sms_messages")) == 6
