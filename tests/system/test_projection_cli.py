"""`projections status` and `rebuild` from the shell."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from projections.registry import PROJECTIONS
from service.cli.projections import _ProgressReport
from tests.support.cli import run_cli
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, catch_up

ROOT = Path(__file__).resolve().parents[2]


async def test_status_shows_position_lag_and_a_due_rebuild(db_url, conn, org_id):
    await append_payloads(conn, org_id, [("calls", SEED["calls"]), ("sms", SEED["sms"])])
    # sms projected by version 0 (a table at position 0 holds nothing: it is built by the code's version)
    await conn.execute("UPDATE projection_checkpoints SET version = 0, position = 2 WHERE name = 'sms'")

    code, out, err = await run_cli(db_url, "projections", "status")

    assert (code, err) == (0, "")
    lines = {line.split()[0]: line.split(None, 5) for line in out.decode().splitlines()[1:]}
    assert set(lines) == {"calls", "sms", "recordings", "reports"}
    # version, table version, position, lag: nothing projected yet, so the code's version builds it
    assert lines["calls"][1:5] == ["2", "2", "0", "2"]
    assert "rebuild due (table built by version 0)" in lines["sms"][5]
    assert "rebuild due" not in lines["calls"][5]


async def test_tables_built_before_the_unambiguous_ids_are_due_a_rebuild(db_url, pool, conn, org_id):
    # A database projected by version 1, whose ids joined the key parts with a separator.
    await append_payloads(
        conn, org_id, [(kind, SEED[kind]) for kind in ("calls", "sms", "recordings", "reports")]
    )
    await catch_up(pool, projections=[dataclasses.replace(p, version=1) for p in PROJECTIONS.values()])

    code, out, err = await run_cli(db_url, "projections", "status")

    assert (code, err) == (0, "")
    lines = {line.split()[0]: line.split(None, 5) for line in out.decode().splitlines()[1:]}
    for name in ("calls", "sms", "recordings", "reports"):
        assert lines[name][1:5] == ["2", "1", "4", "0"], name
        assert "rebuild due (table built by version 1)" in lines[name][5], name

    code, _, err = await run_cli(db_url, "rebuild", "--all")
    assert code == 0, err
    code, out, err = await run_cli(db_url, "projections", "status")
    assert "rebuild due" not in out.decode()
    assert [line.split()[2] for line in out.decode().splitlines()[1:]] == ["2"] * 4


async def test_a_new_database_is_built_by_the_current_versions(pool, conn, org_id):
    await append_payloads(conn, org_id, [("calls", SEED["calls"])])
    await catch_up(pool)

    versions = dict(await conn.fetch("SELECT name, version FROM projection_checkpoints"))
    assert versions == {name: p.version for name, p in PROJECTIONS.items()}


async def test_rebuild_all_brings_every_table_to_the_head(db_url, conn, org_id):
    await append_payloads(conn, org_id, [("calls", SEED["calls"]), ("reports", SEED["reports"])])

    code, out, err = await run_cli(db_url, "rebuild", "--all")

    assert code == 0, err
    assert out.decode().splitlines() == [
        f"{name}: rebuilt up to event 2" for name in ("calls", "sms", "recordings", "reports")
    ]
    assert "2/2 events" in err  # the progress report, plain lines when not on a terminal
    assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    assert await conn.fetchval("SELECT count(*) FROM mightycall_reports") == 6
    assert {r["position"] for r in await conn.fetch("SELECT position FROM projection_checkpoints")} == {2}


@pytest.mark.parametrize("args", [("rebuild",), ("rebuild", "calls", "faxes")])
async def test_rebuild_needs_known_names(db_url, conn, args):
    code, out, err = await run_cli(db_url, *args)

    assert code != 0
    assert out == b""
    assert "\n" not in err.strip() and "calls, sms, recordings, reports" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_follows_the_replay_furthest_behind():
    out = _Terminal()
    report = _ProgressReport(out)

    report("calls, recordings", 800, 1000)
    report("sms, reports", 300, 1000)
    report("calls, recordings", 900, 1000)
    assert out.getvalue().split("\r")[-1].startswith("sms, reports [#########.....")
    assert " 300/1,000 events" in out.getvalue().split("\r")[-1]

    report("sms, reports", 1000, 1000)
    assert out.getvalue().split("\r")[-1].startswith("calls, recordings [")
    assert " 900/1,000 events" in out.getvalue().split("\r")[-1]
    report.finish()
    assert out.getvalue().endswith("\n")


def test_off_a_terminal_a_line_comes_for_each_replay_that_finishes():
    out = io.StringIO()
    report = _ProgressReport(out, every_s=3600)

    report("calls, recordings", 10, 20)
    report("sms, reports", 20, 20)
    report("calls, recordings", 20, 20)

    assert [line.split(",")[0:2] for line in out.getvalue().splitlines()] == [
        ["sms", " reports: 20/20 events"],
        ["calls", " recordings: 20/20 events"],
    ]


def test_a_replay_that_waited_for_a_free_process_is_paced_from_its_own_start():
    out, now = io.StringIO(), [0.0]
    report = _ProgressReport(out, every_s=3600, clock=lambda: now[0])

    report("sms", 0, 1000)
    now[0] = 10.0
    report("sms", 1000, 1000)
    # reports waited for sms's process and starts only now: 1,000 events in 10 s, not in 20.
    report("reports", 0, 1000)
    now[0] = 20.0
    report("reports", 1000, 1000)

    assert out.getvalue().splitlines() == [
        "sms: 1,000/1,000 events, 100/s, ETA 0s",
        "reports: 1,000/1,000 events, 100/s, ETA 0s",
    ]


def test_on_a_terminal_the_time_left_is_the_furthest_behind_replay_s_at_its_own_pace():
    out, now = _Terminal(), [0.0]
    report = _ProgressReport(out, clock=lambda: now[0])

    report("calls, recordings", 0, 1000)
    now[0] = 10.0
    report("calls, recordings", 900, 1000)
    report("reports", 0, 1000)
    assert out.getvalue().split("\r")[-1].strip().endswith("0/1,000 events  0/s  ETA ?")
    now[0] = 12.0
    report("reports", 200, 1000)

    assert out.getvalue().split("\r")[-1].strip().endswith("200/1,000 events  100/s  ETA 8s")
