"""The database going away: 503 at once, nothing half-written, and recovery without a restart."""

from __future__ import annotations

import asyncio

import pytest
from litestar.testing import AsyncTestClient

from service.app import create_app
from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for
from tests.support.proxy import DatabaseProxy

# A guard against hanging, not a measurement: the service bounds connects at a few seconds.
NO_HANG_S = 20


@pytest.fixture
def proxy(db_url):
    database = DatabaseProxy(db_url)
    database.start()
    yield database
    database.close()


async def test_unreachable_database_is_503_then_recovers(settings, proxy, conn, org_id):
    async with AsyncTestClient(app=create_app(settings, proxy.url)) as client:
        before = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
        assert before.status_code == 202

        proxy.cut()
        for kind in ("calls", "sms"):
            body = body_for(kind, org_id, timestamp="2024-02-01T00:00:00Z")
            during = await asyncio.wait_for(
                client.post(PATHS[kind], content=body, headers=bearer()), NO_HANG_S
            )
            assert during.status_code == 503, during.text
            assert during.json()["error"] == "database_unavailable"
            assert during.headers["retry-after"]
        ready = await asyncio.wait_for(client.get("/ready"), NO_HANG_S)
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "reason": "database unreachable"}

        proxy.start()
        after = await client.post(
            PATHS["sms"], content=body_for("sms", org_id, timestamp="2024-02-01T00:00:00Z"), headers=bearer()
        )
        assert after.status_code == 202, after.text
        assert (await client.get("/ready")).status_code == 200

    rows = await conn.fetch("SELECT id, kind FROM event_log ORDER BY id")
    assert [(r["id"], r["kind"]) for r in rows] == [(1, "calls"), (2, "sms")]
