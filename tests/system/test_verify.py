"""Tamper evidence: a superuser edits the log behind the triggers' back, in every way an auditor
cares about, and verification names the first event that fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from service.eventlog.chain import row_hash
from service.eventlog.verify import Checkpoint, take_checkpoint, verify_log
from tests.support.cli import run_cli
from tests.support.hostile import ALL_TOKEN, audited_client
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 6
_RECORDED = (
    "SELECT ok, head_position, head_hash, failure_position, failure_reason, checkpoints_checked, by"
    " FROM audit_verifications ORDER BY id"
)


@pytest.fixture
async def log(conn, org_id):
    for n in range(EVENTS):
        await append_payloads(conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"})])
    yield


_TRIGGERS = {
    "event_log": ("event_log_no_update_or_delete", "event_log_no_truncate"),
    "event_log_head": ("event_log_head_forward_only", "event_log_head_no_truncate"),
    "audit_checkpoints": ("audit_checkpoints_no_update_or_delete", "audit_checkpoints_no_truncate"),
}


async def _behind_the_triggers(conn, *statements: str) -> None:
    # What a superuser (or the tables' owner) can do: switch the append-only triggers off, and back on.
    for table in _TRIGGERS:
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        for table, triggers in _TRIGGERS.items():
            for trigger in triggers:
                await conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")


async def _rechain_from(conn, first: int) -> None:
    """Recompute every hash from `first` on and move the head: a careful forger's finishing touch."""
    rows = await conn.fetch("SELECT * FROM event_log WHERE id >= $1 ORDER BY id", first)
    chain = bytes(await conn.fetchval("SELECT hash FROM event_log WHERE id = $1", first - 1))
    statements = []
    for row in rows:
        sha = hashlib.sha256(bytes(row["body"])).digest()
        new = row_hash(chain, {**row, "body_sha256": sha})
        statements.append(
            f"UPDATE event_log SET body_sha256 = '\\x{sha.hex()}', prev_hash = '\\x{chain.hex()}',"
            f" hash = '\\x{new.hex()}' WHERE id = {row['id']}"
        )
        chain = new
    statements.append(f"UPDATE event_log_head SET hash = '\\x{chain.hex()}'")
    await _behind_the_triggers(conn, *statements)


async def test_an_untouched_log_verifies(conn, log):
    result = await verify_log(conn)

    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    assert result.as_json() == {
        "ok": True,
        "head": {"id": EVENTS, "hash": bytes(head["hash"]).hex()},
        "failure": None,
    }


@pytest.mark.parametrize(
    ("statements", "failure_id", "reason"),
    [
        (["UPDATE event_log SET body = convert_to('{}', 'UTF8') WHERE id = 3"], 3, "body does not match"),
        (["UPDATE event_log SET external_id = 'forged' WHERE id = 4"], 4, "envelope does not match"),
        (
            ["UPDATE event_log SET received_at = received_at + interval '1 second' WHERE id = 2"],
            2,
            "envelope",
        ),
        (["DELETE FROM event_log WHERE id = 3"], 3, "event 3 is missing"),
        (["DELETE FROM event_log WHERE id = 1"], 1, "event 1 is missing"),
        (
            [
                "UPDATE event_log SET id = 100 WHERE id = 2",
                "UPDATE event_log SET id = 2 WHERE id = 3",
                "UPDATE event_log SET id = 3 WHERE id = 100",
            ],
            2,
            "chain is broken",
        ),
        ([f"DELETE FROM event_log WHERE id >= {EVENTS - 1}"], EVENTS - 1, "truncated"),
    ],
    ids=["body", "envelope", "received-at", "deleted", "deleted-first", "swapped", "tail-truncated"],
)
async def test_each_kind_of_tampering_is_caught_at_the_first_event_it_touches(
    conn, log, statements, failure_id, reason
):
    await _behind_the_triggers(conn, *statements)

    result = await verify_log(conn)

    assert not result.ok
    assert result.failure_id == failure_id
    assert reason in result.failure_reason


async def test_a_truncation_with_the_head_moved_back_is_caught_by_a_kept_checkpoint(conn, log):
    kept = await take_checkpoint(conn)
    last_but_one = await conn.fetchrow("SELECT id, hash FROM event_log WHERE id = $1", EVENTS - 1)
    await _behind_the_triggers(
        conn,
        f"DELETE FROM event_log WHERE id = {EVENTS}",
        "DELETE FROM audit_checkpoints",
        f"UPDATE event_log_head SET position = {EVENTS - 1}, hash = '\\x{bytes(last_but_one['hash']).hex()}'",
    )
    # Without the checkpoint the shortened log is consistent: that is why auditors keep them.
    assert (await verify_log(conn)).ok

    result = await verify_log(conn, [Checkpoint(kept.position, kept.head_hash)])

    assert (result.ok, result.failure_id) == (False, EVENTS)
    assert "beyond the end" in result.failure_reason


async def test_a_rewrite_with_a_recomputed_chain_is_caught_by_an_old_checkpoint(conn, log):
    kept = await take_checkpoint(conn)
    await _behind_the_triggers(
        conn, "UPDATE event_log SET body = convert_to('{\"forged\": 1}', 'UTF8') WHERE id = 2"
    )
    await _rechain_from(conn, 2)
    # The checkpoint recorded in the database catches it too, unless the forger deletes it as well.
    recorded = await verify_log(conn)
    assert (recorded.ok, recorded.failure_id) == (False, kept.position)
    await _behind_the_triggers(conn, "DELETE FROM audit_checkpoints")
    assert (await verify_log(conn)).ok

    result = await verify_log(conn, [Checkpoint(kept.position, kept.head_hash)])

    assert (result.ok, result.failure_id) == (False, kept.position)
    assert "rewritten at or before" in result.failure_reason


async def test_events_checkpoint_and_verify_from_the_shell(db_url, conn, log, tmp_path):
    code, out, err = await run_cli(db_url, "events", "checkpoint")
    assert (code, err) == (0, "")
    checkpoint = json.loads(out)
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    assert (checkpoint["position"], checkpoint["head_hash"]) == (EVENTS, bytes(head["hash"]).hex())
    kept = tmp_path / "checkpoints.ndjson"
    kept.write_bytes(out)

    code, out, err = await run_cli(db_url, "events", "verify", "--checkpoint", str(kept))
    assert (code, json.loads(out)["ok"]) == (0, True)

    await _behind_the_triggers(conn, "UPDATE event_log SET body = convert_to('{}', 'UTF8') WHERE id = 4")
    code, out, err = await run_cli(db_url, "events", "verify", "--checkpoint", str(kept))
    assert code != 0
    assert out == b""
    assert (
        err.strip() == "mightycall-ingest: verification failed at event 4: the body does not match its sha256"
    )
    # Both recorded: the failure stopped before the two checkpoints at EVENTS (the kept one and its copy).
    assert [tuple(row) for row in await conn.fetch(_RECORDED)] == [
        (True, EVENTS, bytes(head["hash"]), None, None, 2, "cli"),
        (False, EVENTS, bytes(head["hash"]), 4, "the body does not match its sha256", 0, "cli"),
    ]


async def test_a_failed_verification_through_the_api_is_recorded_with_where_and_why(
    settings, db_url, conn, org_id, log
):
    kept = await take_checkpoint(conn)
    await _behind_the_triggers(
        conn, "UPDATE event_log SET body = convert_to('{\"forged\": 1}', 'UTF8') WHERE id = 2"
    )
    await _rechain_from(conn, 2)
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")

    async with audited_client(settings, db_url, org_id) as client:
        response = await client.get("/audit/verify", headers={"Authorization": f"Bearer {ALL_TOKEN}"})

    reason = f"the checkpoint at {kept.position} does not match: the log was rewritten at or before it"
    assert response.json() == {
        "ok": False,
        "head": {"id": EVENTS, "hash": bytes(head["hash"]).hex()},
        "failure": {"id": kept.position, "reason": reason},
    }
    assert [tuple(row) for row in await conn.fetch(_RECORDED)] == [
        (False, EVENTS, bytes(head["hash"]), kept.position, reason, 1, "api")
    ]


async def test_a_malformed_checkpoint_file_is_refused(db_url, log, tmp_path):
    kept = tmp_path / "checkpoints.ndjson"
    kept.write_text('{"position": 3}\n')

    code, out, err = await run_cli(db_url, "events", "verify", "--checkpoint", str(kept))

    assert (code, out) == (1, b"")
    assert f"{kept}:1: not a checkpoint" in err
