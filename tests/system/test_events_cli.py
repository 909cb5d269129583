"""`events list | show | raw | export` from the shell."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads

ROOT = Path(__file__).resolve().parents[2]


async def _log(conn, org_id) -> None:
    await append_payloads(
        conn,
        org_id,
        [
            ("calls", SEED["calls"]),
            ("sms", {**SEED["sms"], "sms_id": "sms-a"}),
            ("sms", {**SEED["sms"], "sms_id": "sms-b"}),
            ("reports", SEED["reports"]),
        ],
    )


async def test_list_filters_and_pages(db_url, conn, org_id):
    await _log(conn, org_id)

    code, out, err = await run_cli(db_url, "events", "list", "--kind", "sms", "--limit", "1")

    assert (code, err) == (0, "")
    lines = out.decode().splitlines()
    assert lines[0].split() == ["id", "received_at", "kind", "event_type", "org_id", "external_id"]
    assert lines[1].split()[0::2] == ["2", "sms", str(org_id)]
    assert lines[1].split()[-1] == "sms-a"
    assert lines[2] == "more: --after 2"

    code, out, _ = await run_cli(db_url, "events", "list", "--kind", "sms", "--after", "2")
    assert [line.split()[-1] for line in out.decode().splitlines()[1:]] == ["sms-b"]


async def test_show_and_raw_give_the_envelope_and_the_exact_bytes(db_url, conn, org_id):
    await _log(conn, org_id)
    body = bytes(await conn.fetchval("SELECT body FROM event_log WHERE id = 3"))

    code, out, _ = await run_cli(db_url, "events", "show", "3")
    shown = json.loads(out)
    assert code == 0
    assert (shown["id"], shown["kind"], shown["external_id"]) == (3, "sms", "sms-b")
    assert shown["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert shown["payload"] == json.loads(body)

    code, out, _ = await run_cli(db_url, "events", "raw", "3")
    assert (code, out) == (0, body)

    code, out, err = await run_cli(db_url, "events", "show", "99")
    assert (code, out, err.strip()) == (1, b"", "mightycall-ingest: no event 99")


async def test_export_writes_ndjson_with_bodies_and_chain(db_url, conn, org_id):
    await _log(conn, org_id)

    code, out, err = await run_cli(db_url, "events", "export")

    assert (code, err) == (0, "export: events after 0 through 4\n")
    lines = [json.loads(line) for line in out.decode().splitlines()]
    rows = await conn.fetch("SELECT id, body, hash, prev_hash FROM event_log ORDER BY id")
    assert [line["id"] for line in lines] == [row["id"] for row in rows]
    assert [base64.b64decode(line["body_base64"]) for line in lines] == [bytes(row["body"]) for row in rows]
    assert [(line["prev_hash"], line["hash"]) for line in lines] == [
        (bytes(row["prev_hash"]).hex(), bytes(row["hash"]).hex()) for row in rows
    ]

    code, out, err = await run_cli(db_url, "events", "export", "--since", "yesterday")
    assert code == 1
    assert "`since` must be an RFC 3339 timestamp" in err
