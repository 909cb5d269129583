"""The SQL objects the migrations create from files are what the files say, channel included."""

from __future__ import annotations

from service.eventlog.sql import CHANNEL, load_sql


async def test_append_events_is_the_function_of_its_file_and_notifies_on_the_channel(conn):
    source = await conn.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'append_events'")

    assert source == load_sql("append_events_v1.sql").split("$$")[1]
    assert f"pg_notify('{CHANNEL}'," in source
