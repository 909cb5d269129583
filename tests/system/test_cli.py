"""The `mightycall-ingest` command, run as a real subprocess against a real database.

Contract (SPEC.md): exit status 0 on success, non-zero with a one-line reason on standard error otherwise.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.database import migrations
from tests.support.databases import with_database

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60
# Variables of the caller's environment that would change what the command does.
_SCRUBBED = ("DATABASE_URL", "MIGHTYCALL_WEBHOOK_SECRET", "MIGHTYCALL_SERVICE_ROLE", "MIGHTYCALL_VAR_DIR")
UNREACHABLE_URL = "postgresql://nobody@127.0.0.1:1/nothing"


async def run_cli(
    *args: str, db_url: str | None, limit_s: float = TIMEOUT_S, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m service.cli ARGS` with DATABASE_URL=db_url and the given extra environment."""
    environment = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    if db_url is not None:
        environment["DATABASE_URL"] = db_url
    environment.update(env)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=limit_s,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command succeeded; returns its standard output, stripped."""
    assert result.returncode == 0, f"exit {result.returncode}; stderr: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    return result.stdout.strip()


def assert_one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit with exactly one line on stderr and no traceback; returns that line."""
    assert result.returncode != 0, f"expected failure; stdout: {result.stdout!r}"
    line = result.stderr.strip()
    assert line, "no reason on stderr"
    assert "\n" not in line, f"more than one line on stderr: {result.stderr!r}"
    assert "Traceback" not in line
    return line


def assert_uuid(text: str) -> uuid.UUID:
    value = uuid.UUID(text)
    assert str(value) == text, f"not a canonical UUID on stdout: {text!r}"
    return value


async def count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def org_numbers(conn: asyncpg.Connection, org: uuid.UUID) -> set[str]:
    rows = await conn.fetch("SELECT phone_number FROM phone_numbers WHERE org_id = $1", org)
    return {row["phone_number"] for row in rows}


async def import_csv(path: Path, org: uuid.UUID, db_url: str) -> subprocess.CompletedProcess[str]:
    return await run_cli("phone-numbers", "import", str(path), "--org", str(org), db_url=db_url)


def write_csv(tmp_path: Path, text: str, name: str = "numbers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


THREE_ROWS = "name,phone_number\nAlice,+1 555 0100\nBob,(555) 010-0101\nCarol,555.010.0102\n"
THREE_NUMBERS = {"+1 555 0100", "(555) 010-0101", "555.010.0102"}


# --- orgs add -------------------------------------------------------------------------------------


async def test_orgs_add_prints_the_new_id(db_url, conn):
    org = assert_uuid(assert_ok(await run_cli("orgs", "add", "--name", "Acme", db_url=db_url)))
    assert await conn.fetchval("SELECT name FROM organizations WHERE id = $1", org) == "Acme"
    assert await count(conn, "organizations") == 1


async def test_orgs_add_uses_the_given_id(db_url, conn):
    given = uuid.uuid4()
    output = assert_ok(await run_cli("orgs", "add", "--name", "Globex", "--id", str(given), db_url=db_url))
    assert assert_uuid(output) == given
    assert await conn.fetchval("SELECT name FROM organizations WHERE id = $1", given) == "Globex"
    assert await count(conn, "organizations") == 1


async def test_orgs_add_twice_with_the_same_id_is_refused(db_url, conn):
    given = str(uuid.uuid4())
    assert_ok(await run_cli("orgs", "add", "--name", "First", "--id", given, db_url=db_url))
    second = await run_cli("orgs", "add", "--name", "Second", "--id", given, db_url=db_url)
    assert "already exists" in assert_one_line_failure(second)
    assert second.stdout.strip() == ""
    rows = await conn.fetch("SELECT id, name FROM organizations")
    assert [(str(row["id"]), row["name"]) for row in rows] == [(given, "First")]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201], ids=["empty", "blank", "too-long"])
async def test_orgs_add_refuses_a_bad_name(db_url, conn, name):
    result = await run_cli("orgs", "add", "--name", name, db_url=db_url)
    assert "name" in assert_one_line_failure(result)
    assert await count(conn, "organizations") == 0


async def test_orgs_add_without_a_schema_says_to_migrate(db_url, conn):
    await conn.execute("DROP TABLE integrations, phone_numbers, event_log, organizations CASCADE")
    result = await run_cli("orgs", "add", "--name", "Acme", db_url=db_url)
    assert "migrate" in assert_one_line_failure(result)


# --- integrations add -----------------------------------------------------------------------------


async def test_integrations_add_maps_the_new_id_to_the_org(db_url, conn, org_id):
    output = assert_ok(await run_cli("integrations", "add", "--org", str(org_id), db_url=db_url))
    integration = assert_uuid(output)
    assert await conn.fetchval("SELECT org_id FROM integrations WHERE id = $1", integration) == org_id
    assert await count(conn, "integrations") == 1


async def test_integrations_add_uses_the_given_id(db_url, conn, org_id):
    given = uuid.uuid4()
    output = assert_ok(
        await run_cli("integrations", "add", "--org", str(org_id), "--id", str(given), db_url=db_url)
    )
    assert assert_uuid(output) == given
    assert await conn.fetchval("SELECT org_id FROM integrations WHERE id = $1", given) == org_id
    again = await run_cli("integrations", "add", "--org", str(org_id), "--id", str(given), db_url=db_url)
    assert "already exists" in assert_one_line_failure(again)
    assert await count(conn, "integrations") == 1


async def test_integrations_add_for_an_unknown_org_is_refused(db_url, conn, org_id):
    unknown = uuid.uuid4()
    result = await run_cli("integrations", "add", "--org", str(unknown), db_url=db_url)
    assert str(unknown) in assert_one_line_failure(result)
    assert result.stdout.strip() == ""
    assert await count(conn, "integrations") == 0


async def test_integrations_add_with_a_malformed_org_is_an_argument_error(db_url, conn, org_id):
    result = await run_cli("integrations", "add", "--org", "not-a-uuid", db_url=db_url)
    assert result.returncode == 2  # argparse's usage error
    assert "Traceback" not in result.stderr
    assert "--org" in result.stderr.strip().splitlines()[-1]
    assert await count(conn, "integrations") == 0


# --- phone-numbers import -------------------------------------------------------------------------


async def test_import_adds_the_numbers_and_is_idempotent(db_url, conn, org_id, tmp_path):
    path = write_csv(tmp_path, THREE_ROWS)
    args = ("phone-numbers", "import", str(path), "--org", str(org_id))
    assert assert_ok(await run_cli(*args, db_url=db_url)) == "3 added, 0 already present"
    assert await org_numbers(conn, org_id) == THREE_NUMBERS

    assert assert_ok(await run_cli(*args, db_url=db_url)) == "0 added, 3 already present"
    assert await count(conn, "phone_numbers") == 3
    assert await org_numbers(conn, org_id) == THREE_NUMBERS


async def test_import_adds_only_the_new_numbers(db_url, conn, org_id, tmp_path):
    assert_ok(await import_csv(write_csv(tmp_path, THREE_ROWS, "a.csv"), org_id, db_url))
    more = write_csv(tmp_path, "phone_number\n+1 555 0100\n+1 555 0199\n+1 555 0199\n", "b.csv")
    output = assert_ok(await import_csv(more, org_id, db_url))
    assert output == "1 added, 1 already present"
    assert await org_numbers(conn, org_id) == {*THREE_NUMBERS, "+1 555 0199"}


async def test_the_same_number_may_belong_to_two_orgs(db_url, conn, org_id, tmp_path):
    other = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Other')", other)
    path = write_csv(tmp_path, THREE_ROWS)
    for org in (org_id, other):
        output = assert_ok(await import_csv(path, org, db_url))
        assert output == "3 added, 0 already present"
    assert await org_numbers(conn, other) == THREE_NUMBERS
    assert await count(conn, "phone_numbers") == 6


@pytest.mark.parametrize(
    "bad_line",
    ["Dave,", "Dave,   ", "Dave,call me", "Dave,+1 555 0103,extra", "Dave", "Dave,12"],
    ids=["empty", "blank", "letters", "too-many-fields", "too-few-fields", "too-few-digits"],
)
async def test_import_with_a_bad_line_imports_nothing(db_url, conn, org_id, tmp_path, bad_line):
    # Lines 2 and 3 are valid; line 4 is not; line 5 is valid again.
    text = f"name,phone_number\nAlice,+1 555 0100\nBob,+1 555 0101\n{bad_line}\nErin,+1 555 0104\n"
    path = write_csv(tmp_path, text)
    result = await import_csv(path, org_id, db_url)
    line = assert_one_line_failure(result)
    assert ":4:" in line
    assert "call me" not in line  # the reason names the line, not the row's content
    assert result.stdout.strip() == ""
    assert await count(conn, "phone_numbers") == 0


async def test_import_with_a_bad_line_leaves_earlier_imports_alone(db_url, conn, org_id, tmp_path):
    good = write_csv(tmp_path, THREE_ROWS, "good.csv")
    assert_ok(await import_csv(good, org_id, db_url))
    bad = write_csv(
        tmp_path, "name,phone_number\nNew,+1 555 0177\nNewer,+1 555 0178\nDave,call me\n", "bad.csv"
    )
    result = await import_csv(bad, org_id, db_url)
    assert ":4:" in assert_one_line_failure(result)
    assert await org_numbers(conn, org_id) == THREE_NUMBERS


@pytest.mark.parametrize(
    "text",
    ["name,phone\nAlice,+1 555 0100\n", "name\nAlice\n"],
    ids=["other-column", "single-column"],
)
async def test_import_without_a_phone_number_column_is_refused(db_url, conn, org_id, tmp_path, text):
    result = await import_csv(write_csv(tmp_path, text), org_id, db_url)
    assert "phone_number" in assert_one_line_failure(result)
    assert await count(conn, "phone_numbers") == 0


async def test_import_of_an_empty_file_is_refused(db_url, conn, org_id, tmp_path):
    result = await import_csv(write_csv(tmp_path, ""), org_id, db_url)
    assert "phone_number" in assert_one_line_failure(result)
    assert await count(conn, "phone_numbers") == 0


async def test_import_accepts_a_bom_crlf_and_blank_trailing_lines(db_url, conn, org_id, tmp_path):
    # phone_number first: an unstripped BOM would make the header "\ufeffphone_number".
    text = "\ufeffPhone_Number,name\r\n+1 555 0100,Alice\r\n 555-0101 ,Bob\r\n\r\n\r\n,\r\n"
    path = write_csv(tmp_path, text)
    output = assert_ok(await import_csv(path, org_id, db_url))
    assert output == "2 added, 0 already present"
    assert await org_numbers(conn, org_id) == {"+1 555 0100", "555-0101"}


async def test_import_for_an_unknown_org_imports_nothing(db_url, conn, org_id, tmp_path):
    unknown = uuid.uuid4()
    path = write_csv(tmp_path, THREE_ROWS)
    result = await import_csv(path, unknown, db_url)
    assert str(unknown) in assert_one_line_failure(result)
    assert await count(conn, "phone_numbers") == 0


async def test_import_of_a_missing_file_is_refused(db_url, conn, org_id, tmp_path):
    missing = tmp_path / "nowhere.csv"
    result = await import_csv(missing, org_id, db_url)
    assert "nowhere.csv" in assert_one_line_failure(result)
    assert await count(conn, "phone_numbers") == 0


async def test_import_of_a_file_that_is_not_utf8_is_refused(db_url, conn, org_id, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,phone_number\nJos\u00e9,+1 555 0100\n".encode("latin-1"))
    result = await import_csv(path, org_id, db_url)
    assert "UTF-8" in assert_one_line_failure(result)
    assert await count(conn, "phone_numbers") == 0


# --- serve ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [None, "", " , ", "your-secret-key", "a-real-secret-0123456789,your-secret-key"],
    ids=["unset", "empty", "only-commas", "published-example", "example-among-others"],
)
async def test_serve_refuses_to_start_without_a_usable_secret(db_url, secret):
    env = {} if secret is None else {"MIGHTYCALL_WEBHOOK_SECRET": secret}
    started = time.monotonic()
    result = await run_cli("serve", "--port", "1", db_url=db_url, limit_s=30, **env)
    assert time.monotonic() - started < 15
    assert "MIGHTYCALL_WEBHOOK_SECRET" in assert_one_line_failure(result)


# --- migrate --------------------------------------------------------------------------------------


async def test_migrate_is_idempotent(db_url, conn):
    before = await conn.fetch("SELECT version_num FROM alembic_version")
    assert [row["version_num"] for row in before] == [migrations.head_revision()]
    assert_ok(await run_cli("migrate", db_url=db_url))
    assert_ok(await run_cli("migrate", db_url=db_url))
    after = await conn.fetch("SELECT version_num FROM alembic_version")
    assert [row["version_num"] for row in after] == [migrations.head_revision()]
    heads = await conn.fetch("SELECT position FROM event_log_head")
    assert [row["position"] for row in heads] == [0]
    assert await count(conn, "event_log") == 0


async def test_migrate_builds_the_schema_on_an_empty_database(server_url, conn):
    name = f"mightycall_test_empty_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server_url, name)
        assert_ok(await run_cli("migrate", db_url=url))
        fresh = await asyncpg.connect(url)
        try:
            version = await fresh.fetchval("SELECT version_num FROM alembic_version")
            assert version == migrations.head_revision()
            assert await fresh.fetchval("SELECT position FROM event_log_head") == 0
            # and the operator's commands work against it straight away
            org = assert_uuid(assert_ok(await run_cli("orgs", "add", "--name", "Acme", db_url=url)))
            assert await fresh.fetchval("SELECT name FROM organizations WHERE id = $1", org) == "Acme"
        finally:
            await fresh.close()
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def service_role(conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A login role that exists only for one test (roles are cluster-wide, hence the random name)."""
    role = f"mc_svc_{uuid.uuid4().hex[:12]}"
    await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        yield role
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')


async def privileges(conn: asyncpg.Connection, role: str, table: str) -> dict[str, bool]:
    return {
        privilege: await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", role, table, privilege)
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    }


async def test_migrate_grants_the_service_role_append_only_access(db_url, conn, service_role):
    assert not (await privileges(conn, service_role, "event_log"))["SELECT"]
    assert_ok(await run_cli("migrate", db_url=db_url, MIGHTYCALL_SERVICE_ROLE=service_role))
    assert await privileges(conn, service_role, "event_log") == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
    }
    for table in ("organizations", "integrations", "phone_numbers"):
        assert await privileges(conn, service_role, table) == {
            "SELECT": True,
            "INSERT": False,
            "UPDATE": False,
            "DELETE": False,
            "TRUNCATE": False,
        }, table
    # Running it again changes nothing.
    assert_ok(await run_cli("migrate", db_url=db_url, MIGHTYCALL_SERVICE_ROLE=service_role))
    assert not (await privileges(conn, service_role, "event_log"))["UPDATE"]


async def test_migrate_with_an_unknown_service_role_is_refused(db_url, conn):
    role = f"mc_svc_missing_{uuid.uuid4().hex[:12]}"
    assert not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)
    result = await run_cli("migrate", db_url=db_url, MIGHTYCALL_SERVICE_ROLE=role)
    assert role in assert_one_line_failure(result)
    assert not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)


async def test_migrate_with_a_role_name_that_is_not_plain_is_refused(db_url, conn):
    role = 'x"; DROP TABLE organizations; --'
    result = await run_cli("migrate", db_url=db_url, MIGHTYCALL_SERVICE_ROLE=role)
    assert "MIGHTYCALL_SERVICE_ROLE" in assert_one_line_failure(result)
    assert await conn.fetchval("SELECT to_regclass('organizations') IS NOT NULL")


# --- an unreachable database ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("orgs", "add", "--name", "Acme"),
        ("integrations", "add", "--org", str(uuid.UUID(int=1))),
    ],
    ids=["orgs-add", "integrations-add"],
)
async def test_an_unreachable_database_fails_fast_in_one_line(args):
    started = time.monotonic()
    result = await run_cli(*args, db_url=UNREACHABLE_URL, limit_s=30)
    assert time.monotonic() - started < 15
    assert "not reachable" in assert_one_line_failure(result)


async def test_import_with_an_unreachable_database_fails_fast_in_one_line(tmp_path):
    path = write_csv(tmp_path, THREE_ROWS)
    started = time.monotonic()
    result = await run_cli(
        "phone-numbers",
        "import",
        str(path),
        "--org",
        str(uuid.UUID(int=1)),
        db_url=UNREACHABLE_URL,
        limit_s=30,
    )
    assert time.monotonic() - started < 15
    assert "not reachable" in assert_one_line_failure(result)


async def test_migrate_with_an_unreachable_database_fails_fast_in_one_line():
    started = time.monotonic()
    result = await run_cli("migrate", db_url=UNREACHABLE_URL, limit_s=30)
    assert time.monotonic() - started < 15
    assert_one_line_failure(result)
