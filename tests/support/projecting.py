"""Driving projections in tests: append events, catch the live tables up, rebuild beside them, compare."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg
import msgspec

from projections.live.projector import LiveProjector
from projections.live.retries import Retries
from projections.model import Projection
from projections.rebuild.rebuild import build_shadow
from projections.registry import PROJECTIONS
from projections.runner import head_position, project_batch, step
from service.database.pool import create_pool
from service.eventlog.append import Appended, Delivery, append

__all__ = [
    "append_payloads",
    "assert_tables_equal_a_rebuild",
    "catch_up",
    "live_projector",
    "rebuilt_rows",
    "table_rows",
]

REGION = "US"
_EXTERNAL_ID = {"calls": "call_id", "sms": "sms_id", "recordings": "recording_id", "reports": "report_id"}


async def append_payloads(
    conn: asyncpg.Connection,
    org_id: uuid.UUID,
    payloads: Iterable[tuple[str, dict[str, Any]]],
    *,
    received_at: dt.datetime | None = None,
) -> list[Appended]:
    """Append (kind, payload) pairs as one transaction, as the webhooks would have, received now or at
    `received_at`."""
    deliveries = []
    for kind, payload in payloads:
        body = msgspec.json.encode({**payload, "org_id": str(org_id)})
        deliveries.append(
            Delivery(
                kind=kind,
                event_type=payload["event"],
                org_id=org_id,
                external_id=payload[_EXTERNAL_ID[kind]],
                content_type="application/json",
                body=body,
                body_sha256=hashlib.sha256(body).digest(),
                received_at=received_at or dt.datetime.now(dt.UTC),
            )
        )
    async with conn.transaction():
        return await append(conn, deliveries)


async def catch_up(
    pool: asyncpg.Pool, *, limit: int = 500, projections: Iterable[Projection] | None = None
) -> None:
    """Bring the live tables up to the head, as the live projector would."""
    for projection in projections or PROJECTIONS.values():
        while await step(pool, projection, limit=limit, region=REGION):
            pass


async def table_rows(
    conn: asyncpg.Connection, table: str, org_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f'SELECT * FROM "{table}" WHERE $1::uuid IS NULL OR org_id = $1 ORDER BY id', org_id
    )
    return [dict(row) for row in rows]


async def rebuilt_rows(
    conn: asyncpg.Connection, projection: Projection, *, org_id: uuid.UUID | None = None, batch_size: int = 7
) -> list[dict[str, Any]]:
    """The rows a rebuild from the log produces (of one organization, if given), built beside the live
    table and then dropped."""
    shadow, position = await build_shadow(
        conn, projection, region=REGION, batch_size=batch_size, progress=None
    )
    head = await head_position(conn)
    while position < head:
        position = await project_batch(
            conn, projection, shadow, after=position, upto=head, limit=batch_size, region=REGION
        )
    rows = await table_rows(conn, shadow, org_id)
    await conn.execute(f'DROP TABLE "{shadow}"')
    return rows


async def assert_tables_equal_a_rebuild(conn: asyncpg.Connection, head: int) -> None:
    """Every projection stands at `head`, without an error, and its table equals a fresh rebuild."""
    checkpoints = await conn.fetch("SELECT name, position, error FROM projection_checkpoints ORDER BY name")
    assert [(r["name"], r["position"], r["error"]) for r in checkpoints] == [
        (name, head, None) for name in sorted(PROJECTIONS)
    ]
    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == await rebuilt_rows(
            conn, projection, batch_size=500
        ), projection.name


@contextlib.asynccontextmanager
async def live_projector(
    db_url: str, **settings: str
) -> AsyncIterator[tuple[LiveProjector, asyncio.Task[None]]]:
    """A live projector running on a pool of its own, whose sessions have these settings, until the block
    ends. It polls often and its retries pause briefly, so that a test waits little for it."""
    pool = await create_pool(db_url, settings=settings)
    projector = LiveProjector(
        pool,
        db_url,
        PROJECTIONS.values(),
        region=REGION,
        poll_interval_s=0.05,
        retries=Retries(first_s=0.05, cap_s=0.4),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector, task
    finally:
        stop.set()
        await task
        await pool.close()
