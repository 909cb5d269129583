"""`/ready`: 200 only when the database is reachable, its schema at head, and every projection both
running and no further behind the log than MIGHTYCALL_READY_MAX_LAG_SECONDS; otherwise 503 and why."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from litestar.testing import AsyncTestClient

from projections.registry import PROJECTIONS
from service.app import create_app
from service.core.config import ConfigError, Settings
from service.database.pool import create_pool
from tests.support.http import bearer
from tests.support.payloads import PATHS, SEED, body_for
from tests.support.projecting import append_payloads, catch_up


def _without_projector(settings: Settings, **changes: object) -> Settings:
    # The projector is driven by the test, so that the lag is exactly what the test makes it.
    return dataclasses.replace(settings, run_projector=False, **changes)


async def _append_received_at(conn, org_id, moment: dt.datetime) -> None:
    await append_payloads(conn, org_id, [("calls", SEED["calls"])], received_at=moment)


async def test_a_projection_far_behind_the_log_is_not_ready_until_it_catches_up(
    settings, db_url, conn, org_id
):
    await _append_received_at(conn, org_id, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))

    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        behind = await client.get("/ready")
        pool = await create_pool(db_url)
        try:
            await catch_up(pool)
        finally:
            await pool.close()
        caught_up = await client.get("/ready")

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
        assert (await client.get("/ready")).status_code == 200
    strict = _without_projector(settings, ready_max_lag_s=60)
    async with AsyncTestClient(app=create_app(strict, db_url)) as client:
        response = await client.get("/ready")
        assert response.status_code == 503
        assert "more than 60 s" in response.json()["reason"]


async def test_events_not_yet_applied_but_recent_do_not_make_it_unready(settings, db_url, conn, org_id):
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        posted = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
        ready = await client.get("/ready")

    assert posted.status_code == 202
    assert await conn.fetchval("SELECT count(*) FROM projection_checkpoints WHERE position = 0") == len(
        PROJECTIONS
    )
    assert ready.status_code == 200


async def test_a_projection_stopped_on_an_error_is_named(settings, db_url, conn, org_id):
    await conn.execute(
        "UPDATE projection_checkpoints SET error = 'bad event', error_position = 7 WHERE name = 'sms'"
    )
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json()["reason"].startswith("projection stopped on an error: sms at event 7")


async def test_a_schema_behind_the_code_is_not_ready(settings, db_url, conn):
    await conn.execute("UPDATE alembic_version SET version_num = '0001'")
    async with AsyncTestClient(app=create_app(_without_projector(settings), db_url)) as client:
        response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json()["reason"].startswith("schema at 0001, code expects ")


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_the_bound_must_be_a_positive_whole_number_of_seconds(raw):
    env = {"MIGHTYCALL_WEBHOOK_SECRET": "s", "MIGHTYCALL_READY_MAX_LAG_SECONDS": raw}
    with pytest.raises(ConfigError, match="MIGHTYCALL_READY_MAX_LAG_SECONDS"):
        Settings.from_env(env)


def test_the_bound_defaults_to_five_minutes_and_is_read_from_the_environment():
    assert Settings.from_env({}).ready_max_lag_s == 300
    assert Settings.from_env({"MIGHTYCALL_READY_MAX_LAG_SECONDS": "45"}).ready_max_lag_s == 45
