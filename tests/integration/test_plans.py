"""Statements prepared while the log was empty keep using its index once the log has grown.

asyncpg prepares every statement and PostgreSQL may settle on one generic plan for it after five runs.
Planned against an empty table, that plan scanned the whole log on every append: ingestion slowed
down in step with the log's size (service/database/pool.py sets plan_cache_mode for this reason).
"""

from __future__ import annotations

import asyncpg

from service.database.pool import connect
from service.eventlog.append import append
from tests.support.deliveries import delivery


async def _seq_scans(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    scans: int = await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'event_log'")
    return scans


async def test_appends_keep_using_the_index_as_the_log_grows(db_url, conn, org_id):
    async with connect(db_url) as appending:
        number = 0
        for _ in range(10):  # enough runs on an empty log for a generic plan to be cached
            number += 1
            async with appending.transaction():
                await append(appending, [delivery(org_id, number)])
        for _ in range(20):
            batch = [delivery(org_id, number + i) for i in range(1, 251)]
            number += 250
            async with appending.transaction():
                await append(appending, batch)

        before = await _seq_scans(appending)
        for _ in range(10):
            number += 1
            async with appending.transaction():
                await append(appending, [delivery(org_id, number)])
        assert await _seq_scans(appending) == before

    assert await conn.fetchval("SELECT count(*) FROM event_log") == number
