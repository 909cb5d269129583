"""Exports and verifications each hold a database connection while they read the whole log: at most
MAX_LONG_READS run at once, the next gets a 429 (short reads are not limited), and the slots free as
they end. The long reads are held here by a lock on the log that their first query waits for."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx

from service.app import create_app
from service.audit.api import MAX_LONG_READS
from service.eventlog.append import append
from tests.support.deliveries import delivery
from tests.support.hostile import served

TOKEN = "long-reads-audit-token-0123456789"
STARTED_WITHIN_S = 10  # a guard: the held requests reach the lock within milliseconds


async def _waiting_on_the_lock(conn) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return count


async def test_at_most_two_long_reads_at_once(settings, db_url, conn, org_id):
    async with conn.transaction():
        await append(conn, [delivery(org_id, n) for n in range(1, 11)])
    app = create_app(dataclasses.replace(settings, audit_tokens=((TOKEN, None),)), db_url)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        served(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        async with conn.transaction():
            await conn.execute("LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE")
            held = [
                asyncio.create_task(client.get("/audit/verify", headers=headers))
                for _ in range(MAX_LONG_READS)
            ]
            for _ in range(STARTED_WITHIN_S * 20):
                if await _waiting_on_the_lock(conn) == MAX_LONG_READS:
                    break
                await asyncio.sleep(0.05)
            assert await _waiting_on_the_lock(conn) == MAX_LONG_READS
            export = await client.get("/audit/export", headers=headers)
            verify = await client.get("/audit/verify", headers=headers)
            checkpoint = await client.get("/audit/checkpoint", headers=headers)
        finished = await asyncio.gather(*held)

        for refused in (export, verify):
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"] == "too_many_requests"
            assert refused.headers["retry-after"]
        assert checkpoint.status_code == 200  # a short read is not limited
        assert [(r.status_code, r.json()["ok"]) for r in finished] == [(200, True)] * MAX_LONG_READS

        # The slots are free again.
        whole = await client.get("/audit/export", headers=headers)
        assert whole.status_code == 200
        assert len(whole.content.splitlines()) == 10
        assert (await client.get("/audit/verify", headers=headers)).status_code == 200
