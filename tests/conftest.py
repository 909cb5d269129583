"""Every test that touches SQL gets its own database, copied from a template migrated once per run.

The server is the embedded PostgreSQL (a throwaway data directory) unless DATABASE_URL names one;
that role needs CREATEDB and, for the privilege tests, CREATEROLE.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.database import migrations
from service.database.embedded import embedded_server
from service.database.grants import grant_service_role
from service.database.pool import create_pool
from tests.support.databases import with_database
from tests.support.http import SECOND_SECRET, SECRET

TEMPLATE = "mightycall_test_template"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL for the server's maintenance database."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    pgdata = Path(tempfile.mkdtemp(prefix="mightycall-test-")) / "pgdata"
    server = embedded_server(pgdata, cleanup_mode="delete")
    yield server.get_uri("postgres")
    server.cleanup()
    shutil.rmtree(pgdata.parent, ignore_errors=True)


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    asyncio.run(
        _admin(
            server_url,
            f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)',
            f'CREATE DATABASE "{TEMPLATE}"',
        )
    )
    url = with_database(server_url, TEMPLATE)
    migrations.upgrade(url)
    return url


@pytest.fixture
async def db_url(server_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"mightycall_test_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield with_database(server_url, name)
    await _admin(server_url, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_url)
    yield connection
    await connection.close()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The service's own pool (its session settings) on this test's database."""
    database = await create_pool(db_url)
    yield database
    await database.close()


@pytest.fixture
async def org_id(conn: asyncpg.Connection) -> uuid.UUID:
    org = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Acme')", org)
    return org


@pytest.fixture
async def granted_role(conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A role with what `migrate` grants MIGHTYCALL_SERVICE_ROLE, for one test (roles are cluster-wide,
    hence the random name); dropped afterwards, `conn` back to its own role first."""
    role = f"mc_service_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE ROLE "{role}"')
    try:
        await grant_service_role(conn, role)
        yield role
    finally:
        await conn.execute("RESET ROLE")
        await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, webhook_secrets=(SECRET, SECOND_SECRET))


@pytest.fixture
async def client(settings: Settings, db_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(settings, db_url)) as test_client:
        yield test_client
