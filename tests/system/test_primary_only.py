"""Every session the service opens is on the primary, whichever host of DATABASE_URL that is, and a
session that meets a read-only server is a 503 and is replaced (service/database/primary.py).

Against a primary and a streaming standby of the module's own (tests/support/replication.py), each test
in a database of its own on them. The standby is named first in the multi-host URLs: a client that took
the first host that answers would write to it.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.database import migrations
from service.database.pool import connect, create_pool, is_unavailable
from tests.support.databases import with_database
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, body_for
from tests.support.replication import Node, primary_and_standby

# A guard against waiting for ever on a server that never applies its configuration.
TAKES_EFFECT_WITHIN = 200
NO_HANG_S = 30  # a guard: each host has the connect timeout (service/database/pool.py) to itself


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Node, Node]]:
    with primary_and_standby(synchronous=False) as nodes:
        yield nodes


@pytest.fixture
async def database(pair: tuple[Node, Node]) -> AsyncIterator[str]:
    """A new database on the primary (and so on the standby), named; dropped afterwards."""
    primary, standby = pair
    name = f"ha_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(primary.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        replica = await asyncpg.connect(standby.url)
        try:
            query = "SELECT count(*) FROM pg_database WHERE datname = $1"
            for _ in range(TAKES_EFFECT_WITHIN):
                if await replica.fetchval(query, name):
                    break
                await asyncio.sleep(0.05)
        finally:
            await replica.close()
        yield name
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _hosts(*nodes: Node, database: str, query: str = "") -> str:
    hosts = ",".join(f"127.0.0.1:{node.port}" for node in nodes)
    return f"postgresql://postgres@{hosts}/{database}{query}"


async def _in_recovery(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
    finally:
        await conn.close()


@pytest.mark.parametrize("query", ["", "?target_session_attrs=read-write"])
async def test_migrate_and_serve_through_several_hosts_write_to_the_primary(pair, database, query):
    primary, standby = pair
    assert await _in_recovery(with_database(standby.url, database))
    url = _hosts(standby, primary, database=database, query=query)

    await asyncio.to_thread(migrations.upgrade, url)
    on_primary = await asyncpg.connect(with_database(primary.url, database))
    try:
        version = await on_primary.fetchval("SELECT version_num FROM alembic_version")
        assert version == migrations.head_revision()
        org_id = uuid.uuid4()
        await on_primary.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org_id)

        settings = Settings(database_url=url, webhook_secrets=(SECRET,), run_projector=False)
        async with AsyncTestClient(app=create_app(settings, url)) as client:
            answer = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
            assert answer.status_code == 202, answer.text
        assert await on_primary.fetchval("SELECT count(*) FROM event_log") == 1
    finally:
        await on_primary.close()

    pool = await create_pool(url, min_size=4, max_size=4)
    try:
        sessions = [await pool.fetchval("SELECT pg_is_in_recovery()") for _ in range(8)]
    finally:
        await pool.close()
    assert sessions == [False] * 8


async def _set_read_only(primary: Node, value: str | None) -> None:
    """The whole server turned read-only (or back), as a fencing HA manager may: sessions already open
    take the setting at their next command."""
    admin = await asyncpg.connect(primary.url)
    try:
        if value is None:
            await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        else:
            await admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


@pytest.fixture
async def read_only_later(pair) -> AsyncIterator[None]:
    """Whatever a test does to the server's read-only setting is undone."""
    yield
    await _set_read_only(pair[0], None)


async def test_a_session_that_meets_a_read_only_server_is_replaced(pair, database, read_only_later):
    primary, standby = pair
    url = _hosts(standby, primary, database=database)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        await pool.execute("CREATE TABLE probe (n int)")
        before = await pool.fetchval("SELECT pg_backend_pid()")

        await _set_read_only(primary, "on")
        refused = None
        for _ in range(TAKES_EFFECT_WITHIN):
            try:
                await pool.execute("INSERT INTO probe VALUES (1)")
            except asyncpg.ReadOnlySQLTransactionError as exc:
                refused = exc
                break
            await asyncio.sleep(0.05)
        assert refused is not None, "the server never turned read-only"
        assert is_unavailable(refused)

        await _set_read_only(primary, None)
        # The same session would take writes again now: only a new one shows it was dropped.
        after = await pool.fetchval("SELECT pg_backend_pid()")
        await pool.execute("INSERT INTO probe VALUES (2)")
    finally:
        await pool.close()
    assert after != before


async def test_a_webhook_that_meets_a_read_only_server_is_a_503_then_accepted(
    pair, database, read_only_later, tmp_path: Path
):
    primary, standby = pair
    url = _hosts(standby, primary, database=database)
    await asyncio.to_thread(migrations.upgrade, url)
    org_id = uuid.uuid4()
    admin = await asyncpg.connect(with_database(primary.url, database))
    await admin.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org_id)

    settings = Settings(database_url=url, webhook_secrets=(SECRET,), run_projector=False)
    try:
        async with AsyncTestClient(app=create_app(settings, url)) as client:
            first = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
            assert first.status_code == 202, first.text

            await _set_read_only(primary, "on")
            answers = []
            for n in range(TAKES_EFFECT_WITHIN):
                body = body_for("sms", org_id, sms_id=f"sms-{n}")
                answer = await client.post(PATHS["sms"], content=body, headers=bearer())
                answers.append(answer.status_code)
                if answer.status_code != 202:
                    break
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "database_unavailable"
            assert answer.headers["retry-after"]

            await _set_read_only(primary, None)
            for _ in range(TAKES_EFFECT_WITHIN):
                again = await client.post(PATHS["sms"], content=body, headers=bearer())
                if again.status_code != 503:
                    break
                await asyncio.sleep(0.05)
            assert again.status_code == 202, again.text
        logged = await admin.fetchval("SELECT count(*) FROM event_log")
    finally:
        await admin.close()
    assert set(answers) <= {202, 503}
    assert logged == answers.count(202) + 2


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port that takes TCP connections and never says a word, like a frozen machine: the kernel
    completes the handshake, nobody reads."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


async def test_a_host_that_never_answers_does_not_hide_the_primary_behind_it(pair, database, silent_host):
    primary, standby = pair
    url = f"postgresql://postgres@127.0.0.1:{silent_host},127.0.0.1:{standby.port},127.0.0.1:{primary.port}"
    url += f"/{database}"
    pool = await asyncio.wait_for(create_pool(url, min_size=2, max_size=2), NO_HANG_S)
    try:
        assert [await pool.fetchval("SELECT pg_is_in_recovery()") for _ in range(4)] == [False] * 4
    finally:
        await pool.close()
    async with connect(url) as conn:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
