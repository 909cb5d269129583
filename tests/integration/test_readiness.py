"""`/ready` says whether this process can take webhooks: the database reachable as a primary, its schema
at head. Projections play no part in it. `/ready/projections` is for alerting: 200 only when every
projection is running and none is further behind the log than MIGHTYCALL_READY_MAX_LAG_SECONDS;
otherwise 503 and why."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from projections.registry import PROJECTIONS
from service.app import create_app
from service.core.config import ConfigError, Settings
from service.database import migrations
from service.database.pool import create_pool
from tests.support.http import bearer
from tests.support.payloads import PATHS, SEED, body_for
from tests.support.projecting import append_payloads, catch_up
from tests.support.replication import primary_and_standby


def _without_projector(settings: Settings, **changes: object) -> Settings:
    # The projector is driven by the test, so that the lag is exactly what the test makes it.
    return dataclasses.replace(settings, run_projector=False, **changes)


async def _append_received_at(conn, org_id, moment: dt.datetime) -> None:
    await append_payloads(conn, org_id, [("calls", SEED["calls"])], received_at=moment)


async def _stop(conn, name: str, position: int) -> None:
    await conn.execute(
        "UPDATE projection_checkpoints SET error = 'bad event', error_position = $2 WHERE name = $1",
        name,
        position,
    )


# --- /ready: ingestion only ---------------------------------------------------------------------------


async def test_ready_takes_webhooks_while_a_projection_is_stopped_and_the_others_far_behind(
    settings, db_url, conn, org_id
):
    await _append_received_at(conn, org_id, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    await _stop(conn, "sms", 1)

    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        ready = await client.get("/ready")
        posted = await client.post(PATHS["sms"], content=body_for("sms", org_id), headers=bearer())
        projections = await client.get("/ready/projections")

    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert posted.status_code == 202
    # What /ready leaves out is what /ready/projections reports, every reason at once.
    assert projections.status_code == 503
    reason = projections.json()["reason"]
    assert reason.startswith("projection stopped on an error: sms at event 1; ")
    assert "projection behind the log by more than 300 s: " in reason
    for name in PROJECTIONS:
        assert (f"{name} by " in reason) == (name != "sms"), name


async def test_a_schema_behind_the_code_is_not_ready(settings, db_url, conn):
    await conn.execute("UPDATE alembic_version SET version_num = '0001'")
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json()["reason"].startswith("schema at 0001, code expects ")


async def test_a_schema_newer_than_the_code_still_takes_webhooks(settings, db_url, conn, org_id):
    # What an old process sees during a rolling upgrade, once the new version has run migrate.
    await conn.execute("UPDATE alembic_version SET version_num = '9999_newer'")
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        ready = await client.get("/ready")
        posted = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())

    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "schema": f"at 9999_newer, newer than this code's {migrations.head_revision()}: restart",
    }
    assert posted.status_code == 202


async def test_an_unmigrated_database_is_not_ready_on_either_probe(settings, db_url, conn):
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        # Dropped once serve has started: its start reads the projections' tables.
        await conn.execute("DROP TABLE alembic_version")
        await conn.execute("DROP TABLE projection_checkpoints CASCADE")
        responses = [await client.get(path) for path in ("/ready", "/ready/projections")]

    for response in responses:
        assert response.status_code == 503
        assert response.json() == {
            "ready": False,
            "reason": "database not migrated: run `mightycall-ingest migrate`",
        }


@pytest.fixture
def standby_url() -> Iterator[str]:
    """A streaming standby of a primary migrated to head, on a server of its own."""
    with primary_and_standby(synchronous=False) as (primary, standby):
        migrations.upgrade(primary.url)
        asyncio.run(_until_replayed(standby.url, migrations.head_revision()))
        yield standby.url


async def _until_replayed(url: str, revision: str, within_s: float = 60) -> None:
    """Until the standby has replayed the migrations: replication is asynchronous."""
    conn = await asyncpg.connect(url)
    try:
        query = "SELECT version_num FROM alembic_version"
        for _ in range(int(within_s / 0.05)):
            try:
                if await conn.fetchval(query) == revision:
                    return
            except asyncpg.UndefinedTableError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"the standby did not replay the migrations within {within_s} s")
    finally:
        await conn.close()


@pytest.mark.slow
async def test_a_standby_is_not_ready_though_its_schema_is_at_head(settings, standby_url):
    conn = await asyncpg.connect(standby_url)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()")
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == migrations.head_revision()
    finally:
        await conn.close()

    async with AsyncTestClient(app=create_app(_without_projector(settings), standby_url)) as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json()["reason"] == "database is a standby (in recovery): webhooks need the primary"


# --- /ready/projections: for alerting -----------------------------------------------------------------


async def test_a_projection_far_behind_the_log_is_reported_until_it_catches_up(
    settings, db_url, conn, org_id
):
    await _append_received_at(conn, org_id, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))

    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        behind = await client.get("/ready/projections")
        pool = await create_pool(db_url)
        try:
            await catch_up(pool)
        finally:
            await pool.close()
        caught_up = await client.get("/ready/projections")

    assert behind.status_code == 503
    reason = behind.json()["reason"]
    assert reason.startswith("projection behind the log by more than 300 s: ")
    # Every projection has the unapplied event, each is named with its lag.
    for name in PROJECTIONS:
        assert f"{name} by " in reason
    assert "(1 events)" in reason
    assert caught_up.status_code == 200
    assert caught_up.json() == {"ready": True}


async def test_the_bound_is_configurable(settings, db_url, conn, org_id):
    await _append_received_at(conn, org_id, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))

    lenient = _without_projector(settings, ready_max_lag_s=3600)
    async with AsyncTestClient(app=create_app(lenient, db_url)) as client:
        assert (await client.get("/ready/projections")).status_code == 200
    strict = _without_projector(settings, ready_max_lag_s=60)
    async with AsyncTestClient(app=create_app(strict, db_url)) as client:
        response = await client.get("/ready/projections")
        assert response.status_code == 503
        assert "more than 60 s" in response.json()["reason"]


async def test_events_not_yet_applied_but_recent_are_not_reported(settings, db_url, conn, org_id):
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        posted = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
        projections = await client.get("/ready/projections")

    assert posted.status_code == 202
    assert await conn.fetchval("SELECT count(*) FROM projection_checkpoints WHERE position = 0") == len(
        PROJECTIONS
    )
    assert projections.status_code == 200


async def test_a_projection_stopped_on_an_error_is_named(settings, db_url, conn, org_id):
    await _stop(conn, "sms", 7)
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        response = await client.get("/ready/projections")

    assert response.status_code == 503
    assert response.json()["reason"] == (
        "projection stopped on an error: sms at event 7; see `mightycall-ingest projections status`"
    )


async def test_both_probes_are_in_the_openapi_schema(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]

    assert {"/health", "/ready", "/ready/projections"} <= set(paths)


# --- the bound ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_the_bound_must_be_a_positive_whole_number_of_seconds(raw):
    env = {"MIGHTYCALL_WEBHOOK_SECRET": "s", "MIGHTYCALL_READY_MAX_LAG_SECONDS": raw}
    with pytest.raises(ConfigError, match="MIGHTYCALL_READY_MAX_LAG_SECONDS"):
        Settings.from_env(env)


def test_the_bound_defaults_to_five_minutes_and_is_read_from_the_environment():
    assert Settings.from_env({}).ready_max_lag_s == 300
    assert Settings.from_env({"MIGHTYCALL_READY_MAX_LAG_SECONDS": "45"}).ready_max_lag_s == 45
