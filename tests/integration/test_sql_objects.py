"""The SQL objects the migrations create from files are what the files say, channel included."""

from __future__ import annotations

import datetime as dt
import hashlib

from service.eventlog.chain import envelope_tail
from service.eventlog.sql import CHANNEL, load_sql
from service.eventlog.verify import verify_log


async def test_append_events_is_the_function_of_its_newest_file_and_notifies_on_the_channel(conn):
    source = await conn.fetchval(
        "SELECT prosrc FROM pg_proc WHERE proname = 'append_events' AND pronargs = 11"
    )

    assert source == load_sql("append_events_v2.sql").split("$$")[1]
    assert f"pg_notify('{CHANNEL}'," in source


async def test_version_1s_signature_still_appends(conn, org_id):
    """A `serve` of the previous release calls the ten-argument function until it is restarted."""
    body = b'{"event":"call.completed","call_id":"c1"}'
    sha = hashlib.sha256(body).digest()
    received_at = dt.datetime.now(dt.UTC)
    tail = envelope_tail(
        received_at=received_at,
        kind="calls",
        event_type="call.completed",
        org_id=org_id,
        external_id="c1",
        content_type=None,
        body_sha256=sha,
        request_id="r1",
    )
    rows = await conn.fetch(
        "SELECT * FROM append_events($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[],"
        " $6::text[], $7::bytea[], $8::bytea[], $9::text[], $10::bytea[])",
        [received_at],
        ["calls"],
        ["call.completed"],
        [org_id],
        ["c1"],
        [None],
        [body],
        [sha],
        ["r1"],
        [tail],
    )

    assert [(r["event_id"], r["duplicate"]) for r in rows] == [(1, False)]
    assert await conn.fetchval("SELECT admitted_from FROM event_log WHERE id = 1") is None
    assert (await verify_log(conn)).ok
