"""One JSON log line per projector batch and per rebuild step, each saying where it got to."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from projections.rebuild.rebuild import rebuild_many
from projections.registry import PROJECTIONS
from service.core.logs import JsonFormatter
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up


def _lines(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record)) for record in caplog.records if record.getMessage() == message
    ]


async def _append_sms(conn, org_id, count: int) -> None:
    await append_payloads(
        conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(count)]
    )


async def test_each_projector_batch_is_one_line_with_its_range(pool, conn, org_id, caplog):
    await _append_sms(conn, org_id, 7)
    caplog.set_level(logging.INFO, logger="mightycall.projector")

    await catch_up(pool, limit=3, projections=[PROJECTIONS["sms"]])

    lines = _lines(caplog, "projector batch")
    ranges = [(line["after"], line["reached"], line["events"], line["behind"]) for line in lines]
    assert ranges == [(0, 3, 3, 4), (3, 6, 3, 1), (6, 7, 1, 0)]
    assert {line["projection"] for line in lines} == {"sms"}
    assert all(line["ms"] >= 0 for line in lines)


async def test_a_caught_up_projector_logs_nothing(pool, conn, org_id, caplog):
    await _append_sms(conn, org_id, 2)
    await catch_up(pool, projections=[PROJECTIONS["sms"]])
    caplog.set_level(logging.INFO, logger="mightycall.projector")
    # Whether the first catch-up's lines were captured depends on what earlier tests did to logging.
    caplog.clear()

    await catch_up(pool, projections=[PROJECTIONS["sms"]])

    assert _lines(caplog, "projector batch") == []


async def test_each_rebuild_batch_and_each_swap_is_one_line(db_url, conn, org_id, caplog):
    await _append_sms(conn, org_id, 25)
    caplog.set_level(logging.INFO, logger="mightycall.rebuild")

    await rebuild_many(
        db_url, [PROJECTIONS["sms"], PROJECTIONS["calls"]], region=REGION, batch_size=10, processes=1
    )

    batches = [
        (line["projections"], line["reached"], line["events"], line["head"])
        for line in _lines(caplog, "rebuild batch")
    ]
    # One replay after the other, each of its own kinds: calls finds no event and still reports the head.
    assert batches == [("sms", 10, 10, 25), ("sms", 20, 10, 25), ("sms", 25, 5, 25), ("calls", 25, 25, 25)]
    swaps = _lines(caplog, "rebuild swapped in")
    assert [(line["projection"], line["position"]) for line in swaps] == [("sms", 25), ("calls", 25)]


async def test_a_rebuild_split_over_processes_logs_each_part_s_batches_here(db_url, conn, org_id, caplog):
    await _append_sms(conn, org_id, 25)
    caplog.set_level(logging.INFO, logger="mightycall.rebuild")

    await rebuild_many(
        db_url, [PROJECTIONS["sms"], PROJECTIONS["calls"]], region=REGION, batch_size=10, processes=2
    )

    by_part: dict[str, list[tuple[int, int, int]]] = {}
    for line in _lines(caplog, "rebuild batch"):
        by_part.setdefault(line["projections"], []).append((line["reached"], line["events"], line["head"]))
    # sms is replayed here; calls in a child process, whose replay finds no event of its kinds and
    # still reports reaching the head.
    assert by_part == {"sms": [(10, 10, 25), (20, 10, 25), (25, 5, 25)], "calls": [(25, 25, 25)]}
    swaps = _lines(caplog, "rebuild swapped in")
    assert [(line["projection"], line["position"]) for line in swaps] == [("sms", 25), ("calls", 25)]
