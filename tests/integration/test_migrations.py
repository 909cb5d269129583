"""What `migrate` creates, and that it will not start on top of tables it did not make."""

from __future__ import annotations

import asyncpg
import pytest

from service.core.config import ConfigError
from service.database import migrations
from tests.support.databases import with_database


async def test_own_tables_lists_every_table_the_migrations_create(conn):
    tables = {
        row["table_name"]
        for row in await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    }
    assert tables - {"alembic_version"} == set(migrations.OWN_TABLES)


@pytest.mark.parametrize("clash", ["calls", "mightycall_reports", "organizations"])
async def test_a_database_holding_one_of_those_names_is_refused_by_name_and_left_as_it_was(
    server_url, conn, clash
):
    name = f"mightycall_test_clash_{clash}"
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        other = await asyncpg.connect(url)
        try:
            await other.execute(f"CREATE TABLE {clash} (id int); INSERT INTO {clash} VALUES (1)")
            with pytest.raises(ConfigError) as refused:
                migrations.upgrade(url)
            message = str(refused.value)
            assert f"tables that migrate would create: {clash}." in message
            assert "docs/migrating-from-supabase.md" in message
            assert await other.fetchval("SELECT to_regclass('alembic_version')") is None
            assert await other.fetchval("SELECT to_regclass('event_log')") is None
            assert await other.fetchval(f"SELECT count(*) FROM {clash}") == 1
        finally:
            await other.close()
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_a_database_migrated_before_is_upgraded_again_without_complaint(db_url, conn):
    migrations.upgrade(db_url)  # every table exists, and alembic_version says they are ours

    assert await conn.fetchval("SELECT version_num FROM alembic_version") == migrations.head_revision()
