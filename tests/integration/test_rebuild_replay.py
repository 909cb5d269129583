"""The replay behind rebuilds (projections/rebuild/replay.py): one read of the log for several projections,
rows carried from batch to batch, looked up only when the Bloom filter says they may exist, written by
COPY or upsert. Whatever the batch size, the filter's size or the phone book's, it gives the rows the
live projector gives."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from projections.rebuild import replay
from projections.rebuild.bloom import Bloom
from projections.rebuild.rebuild import SHADOW_SUFFIX, rebuild, rebuild_many
from projections.rebuild.replay import Replay
from projections.registry import PROJECTIONS
from projections.runner import ProjectionFailed, head_position
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, rebuilt_rows, table_rows

_BASE = dt.datetime(2024, 1, 20, 14, 0, tzinfo=dt.UTC)
_IN_BOOK = "+12125551234"


def _stamp(minutes: int) -> str:
    return (_BASE + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _webhooks(n: int) -> list[tuple[str, dict]]:
    """Keys that recur in the next event, a few events later and many events later; timestamps that go
    backwards now and then (an older event changes nothing); numbers in the phone book and not."""
    minute = n * 7 % 11
    phone = [_IN_BOOK, "(212) 555-1234", "+14155550000"][n % 3]
    call = f"call-{n % 5}"
    url = f"https://r.example/{call}/{n % 2}.mp3"
    return [
        (
            "calls",
            {**SEED["calls"], "call_id": call, "recording_url": url, "timestamp": _stamp(minute)}
            | {"duration": n, "phone_number": phone},
        ),
        (
            "recordings",
            {**SEED["recordings"], "call_id": call, "url": url, "timestamp": _stamp(minute + n % 3)}
            | {"size_bytes": n, "phone_number": phone},
        ),
        ("sms", {**SEED["sms"], "sms_id": f"sms-{n % 9}", "timestamp": _stamp(minute), "status": str(n)}),
        (
            "reports",
            {
                **SEED["reports"],
                "report_id": f"rep-{n % 2}",
                "timestamp": _stamp(minute) if n % 4 else None,
                "metrics": [{"metric_type": "calls_total", "value": n, "unit": "count"}]
                + ([{"metric_type": "sms_sent", "value": n / 3, "unit": "count"}] if n % 3 else []),
            },
        ),
    ]


async def _live_tables(conn, pool, org_id, events: int = 40) -> dict[str, list[dict]]:
    """Append the webhooks (a few per transaction), project them live, and return the live tables."""
    await conn.execute(
        "INSERT INTO phone_numbers (org_id, phone_number, e164) VALUES ($1, '212-555-1234', $2)",
        org_id,
        _IN_BOOK,
    )
    for first in range(0, events, 4):
        await append_payloads(conn, org_id, [w for n in range(first, first + 4) for w in _webhooks(n)])
    await catch_up(pool, limit=5)
    tables = {p.name: await table_rows(conn, p.table.name) for p in PROJECTIONS.values()}
    # The history exercises what it is meant to: linked numbers, and rows that were merged.
    assert any(row["phone_number_id"] is not None for row in tables["calls"])
    assert any(row["phone_number_id"] is None for row in tables["calls"])
    assert len(tables["calls"]) == 5 and len(tables["sms"]) == min(events, 9)
    return tables


@pytest.mark.parametrize("batch_size", [1, 3, 17, 10_000])
async def test_any_batch_size_gives_the_live_rows(pool, conn, org_id, batch_size):
    live = await _live_tables(conn, pool, org_id)

    for projection in PROJECTIONS.values():
        rows = await rebuilt_rows(conn, projection, batch_size=batch_size)
        assert rows == live[projection.name], projection.name


# One process; two (calls and recordings here, sms and reports in a child); three (two children).
@pytest.mark.parametrize("processes", [1, 2, 4])
async def test_rebuilding_all_at_once_gives_what_rebuilding_one_at_a_time_gives(
    db_url, pool, conn, org_id, processes
):
    live = await _live_tables(conn, pool, org_id)
    head = await head_position(conn)

    # Small batches: keys recur within a batch, in the next one, and after being written and evicted.
    positions = await rebuild_many(
        db_url, PROJECTIONS.values(), region=REGION, batch_size=7, processes=processes
    )

    assert positions == dict.fromkeys(PROJECTIONS, head)
    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == live[projection.name], projection.name
    for projection in PROJECTIONS.values():
        assert await rebuild(db_url, projection, region=REGION, batch_size=1000) == head
        assert await table_rows(conn, projection.table.name) == live[projection.name], projection.name
    checkpoints = await conn.fetch("SELECT name, position, version, error FROM projection_checkpoints")
    assert {tuple(c) for c in checkpoints} == {
        (name, head, p.version, None) for name, p in PROJECTIONS.items()
    }


async def _shadows(conn) -> list[tuple]:
    shadows = []
    for projection in PROJECTIONS.values():
        shadow = f"{projection.table.name}__test"
        await conn.execute(f'CREATE TABLE "{shadow}" (LIKE "{projection.table.name}" INCLUDING ALL)')
        shadows.append((projection, shadow))
    return shadows


async def test_a_bloom_filter_that_says_maybe_to_every_key_only_costs_lookups(pool, conn, org_id):
    live = await _live_tables(conn, pool, org_id)
    shadows = await _shadows(conn)

    # Eight bits for some forty keys a table: nearly every new key is a false "maybe".
    saturated = Replay(shadows, region=REGION, batch_size=5, bloom_bytes=1)
    await saturated.run(conn, conn, after=0, upto=await head_position(conn))

    for projection, shadow in shadows:
        assert await table_rows(conn, shadow) == live[projection.name], projection.name


async def test_a_replay_continues_where_the_last_run_stopped(pool, conn, org_id):
    live = await _live_tables(conn, pool, org_id)
    shadows = await _shadows(conn)
    head = await head_position(conn)

    replaying = Replay(shadows, region=REGION, batch_size=6)
    for after, upto in [(0, 1), (1, 50), (50, 51), (51, head)]:
        await replaying.run(conn, conn, after=after, upto=upto)

    for projection, shadow in shadows:
        assert await table_rows(conn, shadow) == live[projection.name], projection.name


async def test_a_phone_book_too_big_to_hold_is_looked_up_batch_by_batch(
    db_url, pool, conn, org_id, monkeypatch
):
    live = await _live_tables(conn, pool, org_id)
    monkeypatch.setattr(replay, "PHONE_BOOK_LIMIT", 0)

    # In this process alone: a child process would not see the patched limit.
    await rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=10, processes=1)

    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == live[projection.name], projection.name


# With two processes, calls are replayed in this one and sms in a child: the child's failure is raised
# here just the same, and stops the replay in this process too.
@pytest.mark.parametrize(
    ("kind", "bad_field"), [("calls", {"duration": -1}), ("sms", {"direction": "sideways"})]
)
async def test_an_event_that_cannot_be_decoded_stops_the_rebuild_and_names_it(
    db_url, pool, conn, org_id, kind, bad_field
):
    live = await _live_tables(conn, pool, org_id, events=8)
    [bad] = await append_payloads(conn, org_id, [(kind, {**SEED[kind], **bad_field})])
    await append_payloads(conn, org_id, _webhooks(100))

    with pytest.raises(
        ProjectionFailed, match=rf"^event {bad.event_id}: InvalidPayload: .*{next(iter(bad_field))}"
    ) as failed:
        await rebuild_many(db_url, PROJECTIONS.values(), region=REGION, batch_size=3, processes=2)

    assert failed.value.position == bad.event_id
    for projection in PROJECTIONS.values():
        assert await table_rows(conn, projection.table.name) == live[projection.name], projection.name


async def test_the_shadow_table_gets_every_index_of_the_live_one(db_url, conn, org_id):
    await append_payloads(conn, org_id, _webhooks(1))
    definitions = """
        SELECT indexname, replace(indexdef, tablename, '<table>') AS definition FROM pg_indexes
        WHERE tablename = $1 ORDER BY indexname
    """
    before = {p.name: await conn.fetch(definitions, p.table.name) for p in PROJECTIONS.values()}

    await rebuild_many(db_url, PROJECTIONS.values(), region=REGION)

    for projection in PROJECTIONS.values():
        assert await conn.fetch(definitions, projection.table.name) == before[projection.name]
        shadow = projection.table.name + SHADOW_SUFFIX
        assert not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", shadow)


def test_a_bloom_filter_never_forgets_a_key():
    bloom = Bloom(1 << 10)
    added = [(uuid.uuid4(), f"call-{n}") for n in range(500)]
    others = [(uuid.uuid4(), f"call-{n}") for n in range(500)]

    bloom.add(added)

    assert all(key in bloom for key in added)
    # 500 keys in 8,192 bits: about one in sixteen others is a false "maybe".
    assert sum(key in bloom for key in others) < 100
    with pytest.raises(ValueError, match="power of two"):
        Bloom(1000)
