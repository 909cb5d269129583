"""A token limited to one organization learns nothing of the others: no global head, no verification
(whose failure can point into another organization), no status page. A token listed twice is a
configuration error. And the limit on long reads holds under a burst."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from service.app import create_app
from service.audit.api import MAX_LONG_READS
from service.core.config import ConfigError, Settings
from service.eventlog.append import append
from tests.support.cli import ROOT
from tests.support.deliveries import delivery
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, audited_client, served

BURST = 20


@pytest.fixture
async def audit(settings, db_url, org_id):
    async with audited_client(settings, db_url, org_id) as client:
        yield client


@pytest.mark.parametrize("path", ["/audit/verify", "/audit/checkpoint"])
async def test_a_scoped_token_is_refused_the_whole_logs_head_and_verification(audit, conn, org_id, path):
    await append(conn, [delivery(org_id, n) for n in range(1, 4)])
    refused = await audit.get(path, headers={"Authorization": f"Bearer {ORG_TOKEN}"})
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert set(refused.json()) == {"error", "details"}
    assert '"position"' not in refused.text and "hash" not in refused.text
    assert (await audit.get(path, headers={"Authorization": f"Bearer {ALL_TOKEN}"})).status_code == 200


async def test_the_status_page_is_refused_to_a_scoped_session(audit):
    pages = {}
    audit.follow_redirects = False
    for token in (ORG_TOKEN, ALL_TOKEN):
        audit.cookies.clear()
        login = await audit.post(
            "/audit/ui/login", data={"token": token}, headers={"Sec-Fetch-Site": "same-origin"}
        )
        assert login.status_code == 303
        pages[token] = (await audit.get("/audit/ui/status"), (await audit.get("/audit/ui")).text)
    (scoped, scoped_events), (whole, whole_events) = pages[ORG_TOKEN], pages[ALL_TOKEN]
    assert scoped.status_code == 403
    assert 'id="head"' not in scoped.text
    assert "/audit/ui/status" not in scoped_events  # not offered either
    assert whole.status_code == 200 and 'id="head"' in whole.text
    assert "/audit/ui/status" in whole_events


@pytest.mark.parametrize(
    "raw", ["t0ken-one@00000000-0000-0000-0000-000000000001,t0ken-one", "t0ken-one,other,t0ken-one"]
)
def test_the_same_audit_token_twice_is_a_configuration_error(raw):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"MIGHTYCALL_AUDIT_TOKENS": raw})
    assert "repeats the token of entry 1" in str(error.value)
    assert "t0ken-one" not in str(error.value)


async def _waiting_on_the_lock(conn) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return count


async def test_a_burst_of_exports_gets_at_most_two_slots(settings, db_url, conn, org_id):
    await append(conn, [delivery(org_id, n) for n in range(1, 6)])
    app = create_app(
        dataclasses.replace(settings, audit_tokens=((ALL_TOKEN, None),), run_projector=False), db_url
    )
    headers = {"Authorization": f"Bearer {ALL_TOKEN}"}
    async with (
        served(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        async with conn.transaction():
            # Every export that gets a slot waits here, holding it, until the burst has been answered.
            await conn.execute("LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE")
            burst = [asyncio.create_task(client.get("/audit/export", headers=headers)) for _ in range(BURST)]
            async with asyncio.timeout(20):
                while sum(task.done() for task in burst) < BURST - MAX_LONG_READS:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert await _waiting_on_the_lock(conn) == MAX_LONG_READS
        answers = await asyncio.gather(*burst)
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [200] * MAX_LONG_READS + [429] * (BURST - MAX_LONG_READS)
        assert all(len(r.text.splitlines()) == 5 for r in answers if r.status_code == 200)
        # Every slot is free again.
        again = await asyncio.gather(*(client.get("/audit/export", headers=headers) for _ in range(2)))
        assert [r.status_code for r in again] == [200, 200]


async def test_the_standalone_verifier_is_served_to_any_audit_token(audit):
    source = (ROOT / "docs" / "verify_export.py").read_bytes()
    for token in (ALL_TOKEN, ORG_TOKEN):
        response = await audit.get("/audit/verifier.py", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.content == source
        assert response.headers["content-type"].startswith("text/x-python")
    assert (await audit.get("/audit/verifier.py")).status_code == 401
