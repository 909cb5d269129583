"""A database condition that passes holds a projection back; it never stops it.

Each test makes the condition real against PostgreSQL (a lock held past the projector's lock_timeout or
statement_timeout, an operator's pg_cancel_backend, a deadlock) while the live projector runs, sees the
retries counted and the projection not stopped, ends the condition, and sees the rows arrive from the
same projector, with no restart. Only an event's own failure stops a projection, and at that event's
position. (A full disk: tests/system/test_disk_full.py.)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import pytest

from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads, live_projector
from tests.support.waiting import poll_until

TIMEOUT = "200ms"
HELD_BACK = "projection held back by the database; retrying"
NO_LONGER = "projection no longer held back"


def _calls(*call_ids: str, **changes: object) -> list[tuple[str, dict[str, Any]]]:
    return [("calls", {**SEED["calls"], "call_id": call_id, **changes}) for call_id in call_ids]


async def _append(db_url: str, org_id: uuid.UUID, payloads: list[tuple[str, dict[str, Any]]]) -> None:
    """Appended and committed on a connection of its own: the test's holds the condition open."""
    other = await asyncpg.connect(db_url)
    try:
        await append_payloads(other, org_id, payloads)
    finally:
        await other.close()


async def _retries(conn: asyncpg.Connection, reason: str) -> int:
    counted = await conn.fetchval(
        "SELECT retries FROM projection_retries WHERE name = 'calls' AND reason = $1", reason
    )
    return counted or 0


async def _retried(conn: asyncpg.Connection, reason: str, times: int) -> bool:
    """Whether `calls` was retried `times` for `reason`; fails at once if it was stopped instead."""
    await _assert_not_stopped(conn)
    return await _retries(conn, reason) >= times


async def _assert_not_stopped(conn: asyncpg.Connection) -> None:
    assert [(s.name, s.error) for s in await projection_statuses(conn)] == [
        (name, None) for name in PROJECTIONS
    ]


async def _calls_are(conn: asyncpg.Connection, call_ids: set[str]) -> bool:
    return {r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")} == call_ids


async def _waiting_for_a_lock(conn: asyncpg.Connection) -> int | None:
    """The backend of another session of this database that waits for a lock: the projector's."""
    pid: int | None = await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock' LIMIT 1"
    )
    return pid


async def _leading(projector) -> bool:
    return bool(projector.active)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("lock_timeout", "LockNotAvailableError"), ("statement_timeout", "QueryCanceledError")],
)
async def test_a_lock_held_past_the_timeout_holds_the_projection_back_until_it_is_released(
    db_url, conn, org_id, caplog, setting, reason
):
    caplog.set_level(logging.WARNING, logger="mightycall.projector")
    async with live_projector(db_url, **{setting: TIMEOUT}) as (projector, task):
        await poll_until(lambda: _leading(projector), "the projector leads")
        async with conn.transaction():
            await conn.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            await _append(db_url, org_id, [*_calls("held"), ("sms", SEED["sms"])])
            await poll_until(lambda: _retried(conn, reason, 2), "retries counted while the lock is held")
            # The other projections are not held up by the lock on this one's table.
            await poll_until(
                lambda: conn.fetchval("SELECT count(*) = 1 FROM mightycall_sms_messages"), "sms projected"
            )
        await poll_until(lambda: _calls_are(conn, {"held"}), "the row once the lock is gone")
        await _assert_not_stopped(conn)
        assert not task.done() and projector.active
    # One line when the episode starts and one when it ends, however many retries it took.
    said = [r.getMessage() for r in caplog.records if r.getMessage() in (HELD_BACK, NO_LONGER)]
    assert said == [HELD_BACK, NO_LONGER]
    assert await _retries(conn, reason) >= 2


async def test_an_operator_cancelling_the_projectors_statement_does_not_stop_it(db_url, conn, org_id):
    async with live_projector(db_url) as (projector, task):
        await poll_until(lambda: _leading(projector), "the projector leads")
        async with conn.transaction():
            await conn.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
            await _append(db_url, org_id, _calls("cancelled"))
            while not await _retried(conn, "QueryCanceledError", 2):
                pid = await _waiting_for_a_lock(conn)
                if pid is not None:
                    await conn.execute("SELECT pg_cancel_backend($1)", pid)
                await asyncio.sleep(0.02)
        await poll_until(lambda: _calls_are(conn, {"cancelled"}), "the row once nothing cancels it")
        await _assert_not_stopped(conn)
        assert not task.done() and projector.active


async def test_a_deadlock_with_another_transaction_does_not_stop_the_projection(db_url, conn, org_id):
    # The projector's sessions look for deadlocks first, so that it is the one PostgreSQL aborts.
    async with live_projector(db_url, deadlock_timeout="50ms") as (projector, task):
        await _append(db_url, org_id, _calls("a", "b"))
        await poll_until(lambda: _calls_are(conn, {"a", "b"}), "the first rows")
        async with conn.transaction():
            await conn.execute("SET LOCAL deadlock_timeout = '1min'")
            await conn.execute("SELECT 1 FROM calls FOR UPDATE")
            await _append(db_url, org_id, [*_calls("b", "a", duration=200), *_calls("c")])
            # The projector holds the checkpoint row and waits for a call's row; asking for the checkpoint
            # row closes the cycle. In a savepoint, so that this transaction keeps no lock on it after.
            while not await _retried(conn, "DeadlockDetectedError", 1):
                if await _waiting_for_a_lock(conn) is not None:
                    await conn.execute("SAVEPOINT cycle")
                    await conn.execute("SELECT 1 FROM projection_checkpoints WHERE name = 'calls' FOR UPDATE")
                    await conn.execute("ROLLBACK TO SAVEPOINT cycle")
                await asyncio.sleep(0.02)
        await poll_until(lambda: _calls_are(conn, {"a", "b", "c"}), "the rows once the deadlock is gone")
        assert await conn.fetchval("SELECT count(*) FROM calls WHERE duration = 200") == 2
        await _assert_not_stopped(conn)
        assert not task.done() and projector.active


async def test_an_event_that_cannot_be_applied_stops_the_projection_at_that_event(db_url, conn, org_id):
    await conn.execute("ALTER TABLE calls ADD CONSTRAINT no_poison CHECK (call_id <> 'poison')")
    # Other kinds' events between the calls: the one after the last good call is an sms, not the poison.
    await append_payloads(
        conn,
        org_id,
        [
            ("sms", SEED["sms"]),
            *_calls("ok"),
            ("sms", {**SEED["sms"], "sms_id": "2"}),
            *_calls("poison", "later"),
        ],
    )
    async with live_projector(db_url):
        await poll_until(
            lambda: conn.fetchval(
                "SELECT error IS NOT NULL FROM projection_checkpoints WHERE name = 'calls'"
            ),
            "calls stopped",
        )
    statuses = {s.name: s for s in await projection_statuses(conn)}
    assert (statuses["calls"].position, statuses["calls"].error_position) == (2, 4)
    assert statuses["calls"].error.startswith("event 4: CheckViolationError")
    assert await _retries(conn, "CheckViolationError") == 0
    assert [r["call_id"] for r in await conn.fetch("SELECT call_id FROM calls")] == ["ok"]
    assert (statuses["sms"].position, statuses["sms"].error) == (5, None)
