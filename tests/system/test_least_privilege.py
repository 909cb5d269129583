"""The real `serve` running as the least-privileged role that `migrate` grants (MIGHTYCALL_SERVICE_ROLE):
webhooks, projections and the audit API all work, and that role can never change the log.

Migrations run as the owner; the service logs in as a role of its own that may only append.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.support.cli import start_cli
from tests.support.http import SECRET, bearer
from tests.support.ledger import free_port, wait_until_healthy
from tests.support.payloads import PATHS, body_for

AUDIT_TOKEN = "least-privilege-audit-token-0123456789"


def _as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@pytest.fixture
async def service_role(conn: asyncpg.Connection) -> AsyncIterator[tuple[str, str]]:
    role, password = f"mc_service_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    yield role, password
    await conn.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


async def _command(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await start_cli(*args, env=env, stdout=asyncio.subprocess.DEVNULL)


async def test_serve_as_the_service_role_appends_projects_and_audits(db_url, conn, org_id, service_role):
    role, password = service_role
    migrate = await _command("migrate", env={"DATABASE_URL": db_url, "MIGHTYCALL_SERVICE_ROLE": role})
    _, migrate_err = await asyncio.wait_for(migrate.communicate(), 60)
    assert migrate.returncode == 0, migrate_err.decode()

    role_url = _as_role(db_url, role, password)
    port = free_port()
    env = {
        "DATABASE_URL": role_url,
        "MIGHTYCALL_WEBHOOK_SECRET": SECRET,
        "MIGHTYCALL_AUDIT_TOKENS": AUDIT_TOKEN,
    }
    serve = await _command("serve", "--port", str(port), env=env)
    audit = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            await wait_until_healthy(client, serve)
            statuses = [
                (await client.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer())).status_code
                for kind in PATHS
            ]
            for _ in range(200):
                if (await client.get("/ready")).status_code == 200 and await conn.fetchval(
                    "SELECT min(position) FROM projection_checkpoints"
                ) == len(PATHS):
                    break
                await asyncio.sleep(0.05)
            events = await client.get("/audit/events", headers=audit)
            verified = await client.get("/audit/verify", headers=audit)
            checkpoint = await client.get("/audit/checkpoint", headers=audit)
    finally:
        serve.terminate()
        _, serve_err = await asyncio.wait_for(serve.communicate(), 30)

    log = serve_err.decode()
    assert statuses == [202] * len(PATHS), log[-3000:]
    assert events.status_code == 200, events.text
    assert len(events.json()["events"]) == len(PATHS)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    assert checkpoint.status_code == 200, checkpoint.text
    assert checkpoint.json()["position"] == len(PATHS)
    assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    assert await conn.fetchval("SELECT count(*) FROM mightycall_reports") > 0
    assert "Traceback" not in log
    assert password not in log

    as_service = await asyncpg.connect(role_url)
    try:
        assert await as_service.fetchval("SELECT current_user") == role
        for statement in (
            "UPDATE event_log SET external_id = 'forged'",
            "DELETE FROM event_log",
            "TRUNCATE event_log",
            "INSERT INTO audit_checkpoints (position, head_hash) SELECT 0, hash FROM event_log_head",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await as_service.execute(statement)
    finally:
        await as_service.close()
    assert await conn.fetchval("SELECT count(*) FROM event_log") == len(PATHS)
