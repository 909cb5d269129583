"""The real command: `mightycall-ingest serve` over real HTTP, its log lines, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import psutil

from tests.support.cli import start_cli
from tests.support.http import SECOND_SECRET, SECRET, bearer
from tests.support.ledger import free_port, wait_until_healthy
from tests.support.payloads import PATHS, SEED, body_for


async def _serve(db_url: str, port: int) -> asyncio.subprocess.Process:
    env = {"DATABASE_URL": db_url, "MIGHTYCALL_WEBHOOK_SECRET": f"{SECRET},{SECOND_SECRET}"}
    return await start_cli("serve", "--port", str(port), env=env)


async def test_serve_logs_each_delivery_without_secrets_and_stops_cleanly(db_url, conn, org_id):
    port = free_port()
    process = await _serve(db_url, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_until_healthy(client, process)
            statuses = [
                (await client.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer())).status_code
                for kind in PATHS
            ]
            refused = await client.post(
                PATHS["sms"], content=body_for("sms", org_id), headers=bearer("not-" + SECRET)
            )
            ready = await client.get("/ready")
            # The projector runs in a process of its own, started by serve.
            for _ in range(200):
                if await conn.fetchval("SELECT count(*) = 4 FROM projection_checkpoints WHERE position = 4"):
                    break
                await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert statuses == [202, 202, 202, 202]
    assert refused.status_code == 401
    assert ready.json() == {"ready": True}
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 4
    assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    assert await conn.fetchval("SELECT count(*) FROM mightycall_reports") == 6
    # Stopping serve stopped its projector too: nothing of it is still connected.
    others = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for _ in range(100):
        if await conn.fetchval(others) == 0:
            break
        await asyncio.sleep(0.05)
    assert await conn.fetchval(others) == 0

    log = stderr.decode()
    lines = [json.loads(line) for line in log.splitlines()]
    deliveries = [line for line in lines if line.get("msg") == "delivery"]
    assert [(d["kind"], d["outcome"]) for d in deliveries] == [
        ("calls", "accepted"),
        ("sms", "accepted"),
        ("recordings", "accepted"),
        ("reports", "accepted"),
        ("sms", "unauthorized"),
    ]
    assert all(d["latency_ms"] >= 0 for d in deliveries)
    assert [d["event_id"] for d in deliveries[:4]] == [1, 2, 3, 4]
    assert {d["org_id"] for d in deliveries[:4]} == {str(org_id)}
    for never in (SECRET, SECOND_SECRET, SEED["sms"]["message"]):
        assert never not in log


async def test_serve_starts_its_projector_again_when_it_dies(db_url, conn, org_id):
    port = free_port()
    process = await _serve(db_url, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_until_healthy(client, process)
            [first] = psutil.Process(process.pid).children()
            # It yields the CPU to the web process: acknowledging webhooks comes first under load.
            assert first.nice() == psutil.Process(process.pid).nice() + 10
            first.kill()
            await asyncio.to_thread(first.wait, 10)

            response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
            assert response.status_code == 202
            for _ in range(300):
                if await conn.fetchval("SELECT count(*) FROM calls") == 1:
                    break
                await asyncio.sleep(0.05)
            [second] = psutil.Process(process.pid).children()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert await conn.fetchval("SELECT count(*) FROM calls") == 1
    assert second.pid != first.pid
    assert process.returncode == 0
    assert b"the projector process exited; starting it again" in stderr
