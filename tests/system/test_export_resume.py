"""Exports that resume: `after` (and `limit`), one snapshot fixed when the export starts and named in
X-Export-Through (on standard error for `events export`), and resuming after the last id received gives
exactly the rest: nothing skipped, nothing twice, whatever is appended meanwhile."""

from __future__ import annotations

import dataclasses
import json
import uuid

import httpx
import pytest

from service.app import create_app
from service.audit.export import export_through, stream_through
from service.audit.queries import EventFilter
from service.eventlog.append import append
from tests.support.cli import run_cli
from tests.support.deliveries import delivery
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, audited_client, served


@pytest.fixture
async def audit(settings, db_url, org_id):
    async with audited_client(settings, db_url, org_id) as client:
        yield client


async def _log(conn, org_id, other, count: int = 10) -> None:
    """`count` events, every third one in `other`."""
    for n in range(1, count + 1):
        await append(conn, [delivery(other if n % 3 == 0 else org_id, n)])


def _ids(text: str) -> list[int]:
    assert text == "" or text.endswith("\n")
    return [json.loads(line)["id"] for line in text.splitlines()]


async def _export(client, token: str = ALL_TOKEN, **params) -> tuple[list[int], int, str]:
    response = await client.get("/audit/export", params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return _ids(response.text), int(response.headers["x-export-through"]), response.text


async def _other_org(conn) -> uuid.UUID:
    other = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Globex')", other)
    return other


async def test_a_cut_export_resumed_after_the_last_id_received_is_the_whole_export(audit, conn, org_id):
    await _log(conn, org_id, await _other_org(conn))
    whole, through, whole_text = await _export(audit)
    assert (whole, through) == (list(range(1, 11)), 10)

    # A client cut off after three lines resumes after the last id it received.
    received = whole_text.splitlines(keepends=True)[:3]
    rest, rest_through, rest_text = await _export(audit, after=3)
    assert "".join(received) + rest_text == whole_text
    assert (rest, rest_through) == (list(range(4, 11)), 10)

    # Or in pieces of a limited size: each says where it ends, the next starts right after it.
    pieces, after = [], 0
    while True:
        ids, through, _ = await _export(audit, after=after, limit=4)
        if not ids:
            assert through == after
            break
        assert through == ids[-1]
        pieces.append(ids)
        after = through
    assert pieces == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]

    # The filters of /audit/events apply, and resume the same way.
    ids, through, _ = await _export(audit, kind="calls", org_id=str(org_id), after=2, limit=3)
    assert (ids, through) == ([4, 5, 7], 7)


async def test_the_export_holds_what_was_there_when_it_started_and_resuming_gives_the_rest(
    conn, db_url, org_id
):
    await _log(conn, org_id, org_id, count=5)
    through = await export_through(conn, EventFilter(), after=0, limit=None)
    # Appended between the start of the export (its `through`) and its reading of the log.
    await append(conn, [delivery(org_id, n) for n in range(6, 9)])
    streamed = [row["id"] async for row in stream_through(conn, EventFilter(), after=0, through=through)]
    assert (through, streamed) == (5, [1, 2, 3, 4, 5])
    resumed = [row["id"] async for row in stream_through(conn, EventFilter(), after=5, through=8)]
    assert resumed == [6, 7, 8]


async def test_an_export_taken_while_appends_continue_over_http(settings, db_url, conn, org_id):
    await append(conn, [delivery(org_id, n) for n in range(1, 1201)])
    app = create_app(
        dataclasses.replace(settings, audit_tokens=((ALL_TOKEN, None),), run_projector=False), db_url
    )
    headers = {"Authorization": f"Bearer {ALL_TOKEN}"}
    async with (
        served(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        async with client.stream("GET", "/audit/export", headers=headers) as response:
            through = int(response.headers["x-export-through"])
            lines = response.aiter_lines()
            first = await anext(lines)
            await append(conn, [delivery(org_id, n) for n in range(1201, 1221)])
            ids = [json.loads(first)["id"]] + [json.loads(line)["id"] async for line in lines if line]
        assert (through, ids) == (1200, list(range(1, 1201)))
        response = await client.get("/audit/export", params={"after": ids[-1]}, headers=headers)
        assert _ids(response.text) == list(range(1201, 1221))
        assert response.headers["x-export-through"] == "1220"


async def test_a_scoped_token_resumes_within_its_organization_and_learns_no_other_position(
    audit, conn, org_id
):
    other = await _other_org(conn)
    await _log(conn, org_id, other)  # theirs: 3, 6, 9
    ids, through, _ = await _export(audit, ORG_TOKEN, limit=3)
    assert (ids, through) == ([1, 2, 4], 4)
    ids, through, _ = await _export(audit, ORG_TOKEN, after=4)
    assert (ids, through) == ([5, 7, 8, 10], 10)
    # Nothing left: the header repeats `after` rather than saying where the log's head is.
    await append(conn, [delivery(other, 11)])
    ids, through, _ = await _export(audit, ORG_TOKEN, after=10)
    assert (ids, through) == ([], 10)
    ids, through, _ = await _export(audit, ORG_TOKEN, org_id=str(other))
    assert (ids, through) == ([], 0)


async def test_bad_after_or_limit_is_a_400(audit):
    for params in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "2.5"}, {"after": str(2**63)}):
        response = await audit.get(
            "/audit/export", params=params, headers={"Authorization": f"Bearer {ALL_TOKEN}"}
        )
        assert response.status_code == 400, params
        assert response.json()["error"] == "invalid_query"


async def test_events_export_after_from_the_shell(db_url, conn, org_id):
    await _log(conn, org_id, org_id, count=6)
    code, out, err = await run_cli(db_url, "events", "export", "--after", "2", "--limit", "3")
    assert (code, err) == (0, "export: events after 2 through 5\n")
    assert _ids(out.decode()) == [3, 4, 5]
    code, out, err = await run_cli(db_url, "events", "export", "--after", "-1")
    assert code == 1 and "`after` must be between 0" in err
