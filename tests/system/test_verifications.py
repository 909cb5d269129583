"""audit_verifications: every full verification, from the shell or the audit API, records what it said,
in a table that is only ever added to; recording never changes the verification's answer."""

from __future__ import annotations

import json
import logging
import uuid

import asyncpg
import pytest

from service.eventlog.verify import record_verification, take_checkpoint, verify_log
from tests.support.cli import run_cli
from tests.support.hostile import ALL_TOKEN, audited_client
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads

EVENTS = 4
_COLUMNS = "ok, head_position, head_hash, failure_position, failure_reason, checkpoints_checked, by"


@pytest.fixture
async def log(conn: asyncpg.Connection, org_id: uuid.UUID) -> None:
    await append_payloads(
        conn, org_id, [("sms", {**SEED["sms"], "sms_id": f"sms-{n}"}) for n in range(EVENTS)]
    )


async def recorded(conn: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM audit_verifications ORDER BY id")
    return [dict(row) for row in rows]


async def head(conn: asyncpg.Connection) -> bytes:
    return bytes(await conn.fetchval("SELECT hash FROM event_log_head"))


async def known_good(conn: asyncpg.Connection) -> dict[str, object]:
    """The answer the SPEC gives for this untouched log, written out rather than computed by verify_log:
    ok, at the last of the EVENTS appended, with the hash the log holds for it."""
    last = bytes(await conn.fetchval("SELECT hash FROM event_log WHERE id = $1", EVENTS))
    return {"ok": True, "head": {"id": EVENTS, "hash": last.hex()}, "failure": None}


def verified(head_hash: bytes, *, checkpoints: int, by: str) -> dict[str, object]:
    return {
        "ok": True,
        "head_position": EVENTS,
        "head_hash": head_hash,
        "failure_position": None,
        "failure_reason": None,
        "checkpoints_checked": checkpoints,
        "by": by,
    }


async def _read_only(conn: asyncpg.Connection) -> None:
    """New sessions of this test's database are read-only, as on a standby (this one is not)."""
    name = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')


async def test_the_shell_records_what_it_verified(db_url, conn, log, tmp_path):
    kept = tmp_path / "checkpoints.ndjson"
    kept.write_text(json.dumps((await take_checkpoint(conn)).as_json(), default=str) + "\n")

    code, out, err = await run_cli(db_url, "events", "verify", "--checkpoint", str(kept))

    assert (code, err) == (0, "")
    assert json.loads(out) == await known_good(conn)
    assert json.loads(out) == (await verify_log(conn)).as_json()
    # The kept checkpoint and its copy in audit_checkpoints.
    assert await recorded(conn) == [verified(await head(conn), checkpoints=2, by="cli")]
    verified_at = await conn.fetchval("SELECT verified_at FROM audit_verifications")
    assert verified_at <= await conn.fetchval("SELECT now()")


async def test_the_audit_api_records_what_it_verified(settings, db_url, conn, org_id, log):
    async with audited_client(settings, db_url, org_id) as client:
        response = await client.get("/audit/verify", headers={"Authorization": f"Bearer {ALL_TOKEN}"})

    assert response.status_code == 200
    assert response.json() == await known_good(conn)
    assert response.json() == (await verify_log(conn)).as_json()
    assert await recorded(conn) == [verified(await head(conn), checkpoints=0, by="api")]


TAMPERED = 3


async def test_a_known_tamper_is_answered_and_recorded_at_its_event(settings, db_url, conn, org_id, log):
    # Event 3's body gains a byte behind the append-only trigger, as only a superuser could: its sha256
    # no longer matches, so event 3 is the first to fail, whatever the code under test computes.
    await conn.execute("ALTER TABLE event_log DISABLE TRIGGER USER")
    await conn.execute("UPDATE event_log SET body = body || '\\x20'::bytea WHERE id = $1", TAMPERED)
    await conn.execute("ALTER TABLE event_log ENABLE ALWAYS TRIGGER event_log_no_update_or_delete")
    await conn.execute("ALTER TABLE event_log ENABLE ALWAYS TRIGGER event_log_no_truncate")

    code, out, err = await run_cli(db_url, "events", "verify")
    async with audited_client(settings, db_url, org_id) as client:
        response = await client.get("/audit/verify", headers={"Authorization": f"Bearer {ALL_TOKEN}"})

    assert (code, out) == (1, b"")
    assert f"verification failed at event {TAMPERED}:" in err
    assert response.status_code == 200
    answer = response.json()
    assert (answer["ok"], answer["head"]["id"], answer["failure"]["id"]) == (False, EVENTS, TAMPERED)
    rows = await recorded(conn)
    assert [(r["ok"], r["head_position"], r["failure_position"], r["by"]) for r in rows] == [
        (False, EVENTS, TAMPERED, "cli"),
        (False, EVENTS, TAMPERED, "api"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_verifications SET ok = false",
        "DELETE FROM audit_verifications",
        "TRUNCATE audit_verifications",
    ],
)
async def test_a_recorded_result_can_never_be_changed(conn, log, statement):
    assert await record_verification(conn, await verify_log(conn), by="cli")

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(statement)
    assert await recorded(conn) == [verified(await head(conn), checkpoints=0, by="cli")]


_HASH = "decode(repeat('00', 32), 'hex')"


@pytest.mark.parametrize(
    "values",
    [
        "true, 1, NULL, NULL, NULL, 0, 'cli'",
        "true, 1, '\\x00', NULL, NULL, 0, 'cli'",
        f"false, 1, {_HASH}, NULL, 'why', 0, 'cli'",
        f"false, 1, {_HASH}, 1, NULL, 0, 'cli'",
        f"true, 1, {_HASH}, 1, 'why', 0, 'cli'",
        f"false, 1, {_HASH}, 1, repeat('x', 1001), 0, 'cli'",
        f"true, 1, {_HASH}, NULL, NULL, 0, 'cron'",
    ],
    ids=["no-hash", "short-hash", "no-position", "no-reason", "ok-with-failure", "long-reason", "by-whom"],
)
async def test_the_table_refuses_an_incoherent_result(conn, values):
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.NotNullViolationError)):
        await conn.execute(f"INSERT INTO audit_verifications ({_COLUMNS}) VALUES ({values})")


async def test_the_granted_role_records_but_can_never_change_a_result(conn, log, granted_role):
    await conn.execute(f'SET ROLE "{granted_role}"')

    assert await record_verification(conn, await verify_log(conn), by="api")

    assert await recorded(conn) == [verified(await head(conn), checkpoints=0, by="api")]
    # The privilege check comes before any trigger: this role is stopped by the grants alone.
    for statement in (
        "UPDATE audit_verifications SET ok = false",
        "DELETE FROM audit_verifications",
        "TRUNCATE audit_verifications",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(statement)
    for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
        assert not await conn.fetchval("SELECT has_table_privilege('audit_verifications', $1)", privilege)


@pytest.mark.parametrize("refusal", ["read-only", "no-privilege"])
async def test_a_result_that_cannot_be_recorded_still_stands(conn, log, granted_role, caplog, refusal):
    if refusal == "read-only":
        await conn.execute("SET default_transaction_read_only = on")
    else:
        await conn.execute(f'REVOKE INSERT ON audit_verifications FROM "{granted_role}"')
        await conn.execute(f'SET ROLE "{granted_role}"')
    result = await verify_log(conn)

    assert not await record_verification(conn, result, by="api")

    assert result.ok
    [warning] = [r for r in caplog.records if r.name == "mightycall.verify"]
    assert warning.levelno == logging.WARNING
    error = "ReadOnlySQLTransactionError" if refusal == "read-only" else "InsufficientPrivilegeError"
    assert warning.getMessage() == f"could not record the verification's result ({error}); its answer stands"
    await conn.execute("RESET ROLE; SET default_transaction_read_only = off")
    assert await recorded(conn) == []


async def test_on_a_read_only_database_the_shell_answers_as_before(db_url, conn, log):
    await _read_only(conn)

    code, out, err = await run_cli(db_url, "events", "verify")

    assert code == 0
    assert json.loads(out) == (await verify_log(conn)).as_json()
    assert (
        err.strip()
        == "could not record the verification's result (ReadOnlySQLTransactionError); its answer stands"
    )
    assert await recorded(conn) == []


async def test_on_a_read_only_database_the_api_answers_as_before(settings, db_url, conn, org_id, log, caplog):
    await _read_only(conn)
    async with audited_client(settings, db_url, org_id) as client:
        response = await client.get("/audit/verify", headers={"Authorization": f"Bearer {ALL_TOKEN}"})

    assert response.status_code == 200
    assert response.json() == (await verify_log(conn)).as_json()
    assert "could not record the verification's result" in caplog.text
    assert ALL_TOKEN not in caplog.text
    assert await recorded(conn) == []
