"""service.server.asgi: the app as an import path, for ASGI servers that start their own workers."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, body_for

ROOT = Path(__file__).resolve().parents[2]


def test_refuses_to_start_without_database_url():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MIGHTYCALL_WEBHOOK_SECRET"] = SECRET
    done = subprocess.run(
        [sys.executable, "-c", "import service.server.asgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "needs DATABASE_URL" in done.stderr
    assert SECRET not in done.stderr


async def test_serves_webhooks_from_the_environment(db_url, conn, org_id, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MIGHTYCALL_WEBHOOK_SECRET", SECRET)
    module = importlib.reload(importlib.import_module("service.server.asgi"))
    async with AsyncTestClient(app=module.app) as client:
        response = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
        refused = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer("wrong"))
    assert response.status_code == 202
    assert refused.status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM event_log WHERE kind = 'sms'") == 1
