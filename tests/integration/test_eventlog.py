"""The log itself: append-only for every role, gapless, hash-chained, deduplicated."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import uuid

import asyncpg
import pytest

from service.eventlog.append import CHANNEL, Appended, Delivery, append
from service.eventlog.chain import GENESIS_HASH, event_hash, row_hash
from service.eventlog.verify import verify_log
from tests.support.deliveries import delivery


async def append_now(conn: asyncpg.Connection, deliveries: list[Delivery]):
    async with conn.transaction():
        return await append(conn, deliveries)


@pytest.fixture
async def logged(conn, org_id):
    await append_now(conn, [delivery(org_id, 1), delivery(org_id, 2)])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event_log SET external_id = 'forged' WHERE id = 1",
        "UPDATE event_log SET body = 'x'::bytea",
        "DELETE FROM event_log WHERE id = 2",
        "TRUNCATE event_log",
        "TRUNCATE organizations CASCADE",
    ],
)
@pytest.mark.parametrize("replica", [False, True], ids=["origin", "replica-role"])
async def test_log_refuses_every_change_even_to_a_superuser(conn, logged, statement, replica):
    # session_replication_role = replica is the usual way to switch triggers off; ENABLE ALWAYS holds.
    if replica:
        await conn.execute("SET session_replication_role = replica")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(statement)
    await conn.execute("RESET session_replication_role")
    rows = await conn.fetch("SELECT id, external_id FROM event_log ORDER BY id")
    assert [(r["id"], r["external_id"]) for r in rows] == [(1, "c1"), (2, "c2")]


@pytest.mark.parametrize(
    "statement",
    ["UPDATE event_log_head SET position = 0", "DELETE FROM event_log_head", "TRUNCATE event_log_head"],
)
async def test_head_only_moves_forward(conn, logged, statement):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute(statement)
    assert await conn.fetchval("SELECT position FROM event_log_head") == 2


async def test_service_role_can_append_but_never_change(db_url, conn, org_id, granted_role):
    await conn.execute(f'SET ROLE "{granted_role}"')
    await append_now(conn, [delivery(org_id, 1)])
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1
    # The privilege check comes before any trigger: this role is stopped by the grants alone.
    for statement in (
        "UPDATE event_log SET external_id = 'x'",
        "DELETE FROM event_log",
        "TRUNCATE event_log",
        "ALTER TABLE event_log DISABLE TRIGGER ALL",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"permission denied|must be owner"):
            await conn.execute(statement)
    for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
        assert not await conn.fetchval("SELECT has_table_privilege('event_log', $1)", privilege)
    for privilege in ("SELECT", "INSERT"):
        assert await conn.fetchval("SELECT has_table_privilege('event_log', $1)", privilege)


async def test_rolled_back_append_leaves_no_hole(conn, org_id):
    await append_now(conn, [delivery(org_id, 1)])
    tx = conn.transaction()
    await tx.start()
    [rolled_back] = await append(conn, [delivery(org_id, 2)])
    await tx.rollback()
    [next_one] = await append_now(conn, [delivery(org_id, 3)])

    assert rolled_back.event_id == 2
    assert next_one.event_id == 2
    assert [r["id"] for r in await conn.fetch("SELECT id FROM event_log ORDER BY id")] == [1, 2]


async def test_an_append_on_its_own_is_one_transaction_all_or_nothing(db_url, conn, org_id):
    # The service appends this way: one statement, committed when it returns (alembic 0006).
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await append(conn, [delivery(org_id, 1), delivery(uuid.uuid4(), 2)])
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 0
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    assert (head["position"], bytes(head["hash"])) == (0, GENESIS_HASH)

    [first, second] = await append(conn, [delivery(org_id, 1), delivery(org_id, 2)])
    assert (first, second) == (Appended(1, duplicate=False), Appended(2, duplicate=False))
    other = await asyncpg.connect(db_url)
    try:
        assert await other.fetchval("SELECT count(*) FROM event_log") == 2
    finally:
        await other.close()


async def test_each_append_wakes_listeners_with_the_new_head(db_url, conn, org_id):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_url)
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
        await append(conn, [delivery(org_id, 1), delivery(org_id, 2)])
        await append(conn, [delivery(org_id, 1)])  # nothing new: nobody is woken
        await append(conn, [delivery(org_id, 3)])
        assert await asyncio.wait_for(heard.get(), 10) == "2"
        assert await asyncio.wait_for(heard.get(), 10) == "3"
        assert heard.empty()
    finally:
        await listener.close()


async def test_each_hash_covers_the_previous_one(conn, org_id):
    # Events with and without a request id (those logged before request ids existed) in one chain.
    await append_now(conn, [delivery(org_id, 1), delivery(org_id, 2, request_id="req-2")])
    await append_now(conn, [delivery(org_id, 3, request_id="req-3")])
    rows = await conn.fetch("SELECT * FROM event_log ORDER BY id")

    previous = GENESIS_HASH
    for row in rows:
        assert bytes(row["prev_hash"]) == previous
        expected = row_hash(previous, row)
        assert bytes(row["hash"]) == expected
        previous = expected
    head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
    assert (head["position"], bytes(head["hash"])) == (3, previous)


async def test_changing_any_envelope_field_changes_the_hash(org_id):
    base = delivery(org_id, 1)
    fields = dict(
        event_id=1,
        received_at=base.received_at,
        kind=base.kind,
        event_type=base.event_type,
        org_id=base.org_id,
        external_id=base.external_id,
        content_type=base.content_type,
        body_sha256=base.body_sha256,
        request_id="req-1",
    )
    original = event_hash(GENESIS_HASH, **fields)
    variants = {
        "event_id": 2,
        "received_at": base.received_at + dt.timedelta(microseconds=1),
        "kind": "sms",
        "event_type": "call.started",
        "org_id": uuid.uuid4(),
        "external_id": "c2",
        "content_type": None,
        "body_sha256": hashlib.sha256(b"other").digest(),
        "request_id": "req-2",
    }
    for name, value in variants.items():
        assert event_hash(GENESIS_HASH, **{**fields, name: value}) != original, name
    assert event_hash(bytes([1]) * 32, **fields) != original
    assert event_hash(GENESIS_HASH, **{**fields, "request_id": None}) != original


def test_an_event_without_a_request_id_keeps_the_eight_field_envelope():
    """Logs written before request ids existed must still verify: their envelope is unchanged."""
    org = uuid.UUID("00000000-0000-0000-0000-000000000001")
    sha = hashlib.sha256(b"{}").digest()
    moment = dt.datetime(2024, 1, 20, 14, 30, 0, 7, tzinfo=dt.UTC)
    fields = dict(
        event_id=7,
        received_at=moment,
        kind="calls",
        event_type="call.completed",
        org_id=org,
        external_id="c1",
        content_type=None,
        body_sha256=sha,
    )
    eight = (f'[7,1705761000000007,"calls","call.completed","{org}","c1",null,"{sha.hex()}"]').encode()
    assert (
        event_hash(GENESIS_HASH, **fields, request_id=None) == hashlib.sha256(GENESIS_HASH + eight).digest()
    )
    nine = eight[:-1] + b',"req-1"]'
    assert (
        event_hash(GENESIS_HASH, **fields, request_id="req-1") == hashlib.sha256(GENESIS_HASH + nine).digest()
    )


async def test_duplicates_within_one_batch_and_across_batches(conn, org_id):
    first = await append_now(conn, [delivery(org_id, 1), delivery(org_id, 1), delivery(org_id, 2)])
    second = await append_now(conn, [delivery(org_id, 2), delivery(org_id, 1, kind="sms")])

    assert [(a.event_id, a.duplicate) for a in first] == [(1, False), (1, True), (2, False)]
    # Same bytes on another endpoint are another delivery.
    assert [(a.event_id, a.duplicate) for a in second] == [(2, True), (3, False)]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 3


async def test_the_database_chains_exactly_what_the_verifier_recomputes(conn, org_id):
    # The database puts "[id," before an envelope encoded here; any slip in between breaks verification.
    awkward = [
        'quo"te',
        "back\\slash",
        "caf\u00e9 \U0001f4de",
        "tab\tnew\nline\x01\x1f\x7f",
        "",
        "[1,2]",
        "\u2028",
    ]
    deliveries = [
        dataclasses.replace(
            delivery(org_id, n),
            event_type=text,
            external_id=text * 2,
            content_type=None if n % 2 else f"application/json; x={text}",
            request_id=None if n % 3 == 0 else f"req-{text}",
        )
        for n, text in enumerate(awkward, start=1)
    ]
    await append(conn, deliveries[:3])
    await append(conn, deliveries[3:])

    rows = await conn.fetch("SELECT * FROM event_log ORDER BY id")
    previous = GENESIS_HASH
    for row in rows:
        assert row_hash(previous, row) == bytes(row["hash"]), row["id"]
        previous = bytes(row["hash"])
    assert len(rows) == len(awkward)
    assert (await verify_log(conn)).ok
