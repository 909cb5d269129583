"""Hostile and malformed input, through the real app and a real database: bad input gets a 4xx with the
error shape and changes nothing (beyond the record of an authenticated refusal), never a 5xx, never a
traceback, never a credential or a message text in the answer. What is accepted stays readable by every
reader of the log: the projections' decoder, the audit API and PostgreSQL's own JSON."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import hashlib
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.audit.queries import MAX_LIMIT
from service.core.config import Settings
from service.core.payloads import MAX_DEPTH, decode
from service.eventlog.append import Delivery, append
from tests.support.hostile import (
    ALL_TOKEN,
    ORG_TOKEN,
    assert_error_shape,
    assert_safe,
    audited_client,
    counts,
)
from tests.support.http import SECRET, bearer
from tests.support.payloads import PATHS, SEED, body_for

KINDS = list(PATHS)
SMS_TEXT = "the customer's private words 8d1f"
HYPOTHESIS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
AUDIT_PATHS = ["/audit/events", "/audit/export", "/audit/rejected", "/audit/verify", "/audit/checkpoint"]
AUDIT_PARAMS = {
    "/audit/events": {"kind", "event_type", "org_id", "external_id", "since", "until", "after", "limit"},
    "/audit/export": {"kind", "event_type", "org_id", "external_id", "since", "until", "after", "limit"},
    "/audit/rejected": {"kind", "since", "until", "after", "limit"},
    "/audit/verify": set(),
    "/audit/checkpoint": set(),
    "/audit/trace": {"table", "key", "org_id"},
}


def audit_auth(token: str = ALL_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def app(settings: Settings, db_url: str, org_id: uuid.UUID) -> AsyncIterator[AsyncTestClient[Any]]:
    async with audited_client(settings, db_url, org_id) as client:
        yield client


async def post(client: AsyncTestClient[Any], kind: str, body: bytes, **headers: str) -> Any:
    return await client.post(PATHS[kind], content=body, headers={**bearer(), **headers})


async def assert_refused(
    client: AsyncTestClient[Any],
    conn: asyncpg.Connection,
    kind: str,
    body: bytes,
    status: int = 400,
    *,
    recorded: bool = True,
    **headers: str,
) -> dict[str, Any]:
    """Posts `body`: it must get `status` with the error shape, append nothing, and be recorded as a
    rejection (authenticated refusals are) or not."""
    events, rejected = await counts(conn)
    response = await post(client, kind, body, **headers)
    assert response.status_code == status, response.text[:500]
    assert_safe(response.status_code, response.text)
    assert await counts(conn) == (events, rejected + (1 if recorded else 0))
    return assert_error_shape(response.text)


async def assert_accepted(
    client: AsyncTestClient[Any], conn: asyncpg.Connection, kind: str, body: bytes
) -> int:
    response = await post(client, kind, body)
    assert response.status_code == 202, response.text[:500]
    event_id: int = response.json()["event_id"]
    await assert_readable(conn, kind, event_id, body)
    return event_id


async def assert_readable(conn: asyncpg.Connection, kind: str, event_id: int, body: bytes) -> None:
    """Stored byte for byte, and readable by every reader of the log."""
    row = await conn.fetchrow(
        "SELECT body, convert_from(body, 'UTF8')::jsonb AS parsed FROM event_log WHERE id = $1", event_id
    )
    assert row is not None
    assert bytes(row["body"]) == body
    payload = decode(kind, body)  # what the projector and trace run on every event
    assert payload.timestamp is None or payload.timestamp.astimezone(dt.UTC)


# --- strategies ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Raw:
    """A JSON value written out as is: 1e400 and 2**70 are not Python floats."""

    text: bytes


def dump(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return b"{" + b",".join(msgspec.json.encode(k) + b":" + dump(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    return msgspec.json.encode(value)


HUGE_NUMBERS = [
    "1e400",
    "-1e400",
    "1e-400",
    str(2**70),
    str(-(2**70)),
    str(2**63),
    str(2**31),
    "1e999",
    "1e1000",
    "9" * 400,
    "1" * 1001,
    "-0",
    "0.0",
    "1E+2",
]
HOSTILE_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\r\nX-Injected: 1",
    "\ufeff",
    "\U0001f4de",
    "x" * 300,
    "2024-01-20T14:30:00",
    "2024-01-20T14:30:00Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2024-02-30T00:00:00Z",
    "20/01/2024",
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "call.completed",
    "sms.",
    "report.daily",
    "inbound",
    "calls_total",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HUGE_NUMBERS).map(lambda text: Raw(text.encode())),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
deeply_nested = st.integers(MAX_DEPTH - 2, 10_000).flatmap(
    lambda depth: st.sampled_from(
        [Raw(b"[" * depth + b"]" * depth), Raw(b'{"a":' * depth + b"1" + b"}" * depth)]
    )
)
hostile_values = st.one_of(values, deeply_nested, st.sampled_from([Raw(b'"\\u0000"'), Raw(b'"\\\\u0000"')]))


def paths(kind: str) -> list[tuple[Any, ...]]:
    """Where a mutation may land: every field of the seed payload, the organization, an unknown field,
    and for reports the first metric's fields."""
    top = [(key,) for key in SEED[kind]] + [("org_id",), ("integration_id",), ("x-extra",)]
    if kind == "reports":
        top += [("metrics", 0, "metric_type"), ("metrics", 0, "value"), ("metrics", 0, "unit")]
    return top


DROP = object()


def mutations(kind: str) -> st.SearchStrategy[list[tuple[tuple[Any, ...], Any]]]:
    return st.lists(
        st.tuples(st.sampled_from(paths(kind)), st.one_of(hostile_values, st.just(DROP))),
        min_size=1,
        max_size=3,
    )


def mutated(kind: str, org_id: uuid.UUID, changes: list[tuple[tuple[Any, ...], Any]]) -> bytes:
    payload: dict[str, Any] = copy.deepcopy(SEED[kind]) | {"org_id": str(org_id)}
    if kind == "sms":
        payload["message"] = SMS_TEXT
    for path, value in changes:
        parent: Any = payload
        try:
            for step in path[:-1]:
                parent = parent[step]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced or dropped what this one would change
        if not isinstance(parent, dict):
            continue
        if value is DROP:
            if path[-1] in parent:
                del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return dump(payload)


# --- webhooks: properties -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@settings(HYPOTHESIS, max_examples=60)
@given(data=st.data())
async def test_any_mutation_of_a_payload_is_accepted_readable_or_refused_cleanly(
    app, conn, org_id, kind, data
):
    changes = data.draw(mutations(kind), label="changes")
    body = mutated(kind, org_id, changes)
    events, rejected = await counts(conn)

    response = await post(app, kind, body)

    assert_safe(response.status_code, response.text, extra_secrets=[SMS_TEXT])
    if response.status_code == 202:
        assert await counts(conn) == (events + 1, rejected)
        await assert_readable(conn, kind, response.json()["event_id"], body)
    elif response.status_code == 200:  # the same bytes again: a duplicate
        assert response.json()["status"] == "duplicate"
        assert await counts(conn) == (events, rejected)
    else:
        assert response.status_code == 400, response.text
        assert await counts(conn) == (events, rejected + 1)
        stored = await conn.fetchrow("SELECT reason, body FROM rejected_deliveries ORDER BY id DESC LIMIT 1")
        assert bytes(stored["body"]) == body
        assert SMS_TEXT not in response.text


@pytest.mark.parametrize("kind", KINDS)
@HYPOTHESIS
@given(data=st.data())
async def test_corrupted_bytes_of_a_valid_body_are_never_a_server_error(app, conn, org_id, kind, data):
    body = bytearray(body_for(kind, org_id))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(body)), label="at")
        edit = data.draw(st.sampled_from(["truncate", "insert", "replace", "delete"]), label="edit")
        byte = data.draw(st.sampled_from([0, 0x0A, 0x22, 0x5C, 0x7B, 0x5D, 0x80, 0xC3, 0xFF]), label="byte")
        if edit == "truncate":
            del body[at:]
        elif edit == "insert":
            body.insert(at, byte)
        elif body and at < len(body):
            if edit == "replace":
                body[at] = byte
            else:
                del body[at]
    events, rejected = await counts(conn)

    response = await post(app, kind, bytes(body))

    assert_safe(response.status_code, response.text)
    if response.status_code == 202:
        await assert_readable(conn, kind, response.json()["event_id"], bytes(body))
    elif response.status_code == 400:
        assert await counts(conn) == (events, rejected + 1)


@pytest.mark.parametrize("kind", KINDS)
@HYPOTHESIS
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)))
async def test_arbitrary_bytes_are_refused_cleanly(app, conn, kind, body):
    events, rejected = await counts(conn)

    response = await post(app, kind, body)

    assert response.status_code == 400, response.text
    assert_safe(response.status_code, response.text)
    assert await counts(conn) == (events, rejected + 1)


# --- webhooks: specific inputs ------------------------------------------------------------------------
# Each test walks its cases in one database (a database per case would cost ~0.4 s each).


def with_field(body: bytes, field: str, raw: bytes) -> bytes:
    """`body` with `"field": raw` appended as written (a repeated key: the last one counts)."""
    return body[:-1] + b"," + msgspec.json.encode(field) + b":" + raw + b"}"


async def test_huge_numbers_in_declared_fields_are_400_naming_the_field(app, conn, org_id):
    for kind, field, number in [
        ("calls", "duration", "1e400"),
        ("calls", "duration", str(2**70)),
        ("calls", "duration", str(-(2**70))),
        ("calls", "duration", "2147483648"),
        ("calls", "duration", "1.5"),
        ("recordings", "size_bytes", str(2**63)),
        ("recordings", "size_bytes", "1e400"),
        ("sms", "timestamp", "1e400"),
        ("calls", "org_id", str(2**70)),
    ]:
        error = await assert_refused(
            app, conn, kind, with_field(body_for(kind, org_id), field, number.encode())
        )
        assert f"$.{field}" in error["details"], (field, number)


async def test_metric_values_out_of_float_range_are_400_and_2_to_the_70_is_a_float(app, conn, org_id):
    def report(number: str) -> bytes:
        metrics = b'[{"metric_type": "calls_total", "value": ' + number.encode() + b"}]"
        return with_field(body_for("reports", org_id), "metrics", metrics)

    for number in ["1e400", "-1e400", "1" * 400]:
        error = await assert_refused(app, conn, "reports", report(number))
        assert "$.metrics[0].value" in error["details"], number
    # Within float range: kept as sent, projected as the nearest float (a numeric column).
    await assert_accepted(app, conn, "reports", report(str(2**70)))


async def test_huge_numbers_in_unknown_fields_are_kept_unless_postgresql_json_cannot_hold_them(
    app, conn, org_id
):
    for n, number in enumerate(["1e400", str(2**70), "1e999", "9" * 1000, "-1e-999"]):
        body = with_field(body_for("calls", org_id, call_id=f"huge-{n}"), "x-huge", number.encode())
        event_id = await assert_accepted(app, conn, "calls", body)
        event = await app.get(f"/audit/events/{event_id}", headers=audit_auth())
        assert event.status_code == 200, number
    # Regression: these were accepted, then `body::jsonb` (trace, the README's queries) failed on them
    # for good: numeric holds 131072 digits before the point and 16383 after.
    for number in ["1e1000", "-1E-1000", "1" * 1001, "1e131072", "0." + "0" * 20_000 + "1"]:
        error = await assert_refused(
            app, conn, "recordings", with_field(body_for("recordings", org_id), "x-huge", number.encode())
        )
        assert "number" in error["details"], number


async def test_ten_thousand_nested_arrays_are_400_on_every_endpoint(app, conn, org_id):
    # Regression: nesting inside an unknown field raised RecursionError in msgspec: a 500.
    deep_arrays = b"[" * 10_000 + b"]" * 10_000
    for kind in KINDS:
        for body in (
            deep_arrays,
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            with_field(body_for(kind, org_id), "x", deep_arrays),
            with_field(body_for(kind, org_id), "org_id", deep_arrays),
        ):
            await assert_refused(app, conn, kind, body)


async def test_nesting_is_bounded_where_every_reader_can_follow(app, conn, org_id):
    # Regression: 974 levels in an unknown field were accepted, then /audit/events (the whole list,
    # for every auditor) and trace answered 500 on that event: deeper stacks, less recursion left.
    def nested(depth: int) -> bytes:
        return with_field(body_for("calls", org_id, call_id=f"deep{depth}"), "x", b"[" * depth + b"]" * depth)

    await assert_accepted(app, conn, "calls", nested(MAX_DEPTH - 1))  # the object itself is one level
    error = await assert_refused(app, conn, "calls", nested(MAX_DEPTH))
    assert f"more than {MAX_DEPTH} deep" in error["details"]
    await assert_refused(app, conn, "calls", nested(974))

    listing = await app.get("/audit/events", headers=audit_auth())
    assert listing.status_code == 200
    trace = await app.get(
        "/audit/trace",
        params={"table": "calls", "key": f"deep{MAX_DEPTH - 1}", "org_id": str(org_id)},
        headers=audit_auth(),
    )
    assert trace.status_code == 200
    assert len(trace.json()["events"]) == 1


async def test_malformed_bodies_are_400_saying_why(app, conn, org_id):
    valid = body_for("calls", org_id)
    for body, named in [
        (b'{"event": "call.completed", "call_id": "\xff\xfe"}', "UTF-8"),
        (b'{"event": "call.completed", "call_id": "\xc3"}', "UTF-8"),
        (b'{"event": "call.completed", "call_id": "\xed\xa0\x80"}', "UTF-8"),  # an encoded surrogate
        (valid.replace(b"John", b"J\x00hn"), "JSON"),
        (b"\x00" + valid, "JSON"),
        (b'{"event": "call.completed", "call_id": "\\ud800"}', "JSON"),
        (b"\xef\xbb\xbf" + valid, "JSON"),  # a byte order mark
        (b"", "JSON"),
        (b"null", "object"),
        (b"[]", "object"),
        (b'"call.completed"', "object"),
        (valid[:-1] + b",}", "JSON"),
        (valid.replace(b'"', b"'"), "JSON"),
        (with_field(valid, "duration", b"NaN"), "JSON"),
        (valid + b" {}", "JSON"),
        (valid + b"x", "JSON"),
        (valid + b"\x00", "JSON"),
        (valid + b" " + b"[" * 10_000, "JSON"),
        (valid[: len(valid) // 2], "JSON"),
    ]:
        error = await assert_refused(app, conn, "calls", body)
        assert error["error"] == "invalid_payload"
        assert named in error["details"], (body[:80], error)


async def test_nul_escapes_are_refused_in_any_field_of_any_endpoint(app, conn, org_id):
    # In a declared field msgspec refuses it; in an unknown one it was accepted, and then
    # `convert_from(body, 'UTF8')::jsonb` failed: /audit/trace of recordings answered 500 for the
    # whole organization. A literal backslash followed by u0000 is text, and is kept.
    for kind in KINDS:
        await assert_refused(app, conn, kind, with_field(body_for(kind, org_id), "x", b'"a\\u0000"'))
        await assert_refused(app, conn, kind, with_field(body_for(kind, org_id), "x", b'["\\\\\\u0000"]'))
        await assert_accepted(app, conn, kind, with_field(body_for(kind, org_id), "x", b'"a\\\\u0000"'))


async def test_a_nul_escape_no_longer_breaks_trace(app, conn, org_id):
    await assert_refused(
        app, conn, "recordings", with_field(body_for("recordings", org_id), "x", b'"\\u0000"')
    )
    await assert_accepted(app, conn, "recordings", body_for("recordings", org_id))

    trace = await app.get(
        "/audit/trace",
        params={"table": "mightycall_recordings", "key": "call_12345", "org_id": str(org_id)},
        headers=audit_auth(),
    )
    assert trace.status_code == 200, trace.text
    assert len(trace.json()["events"]) == 1


async def test_body_over_the_limit_is_413_recorded_without_the_body(app, conn, org_id, settings):
    for kind in KINDS:
        fits = body_for(kind, org_id)
        fits += b" " * (settings.max_body_bytes - len(fits))
        await assert_accepted(app, conn, kind, fits)
        for size in (settings.max_body_bytes + 1, 10 * 1024 * 1024):
            over = body_for(kind, org_id, call_id=f"big-{size}")
            over += b" " * (size - len(over))
            await assert_refused(app, conn, kind, over, status=413)
            rejected = await conn.fetchrow(
                "SELECT reason, body, body_size FROM rejected_deliveries ORDER BY id DESC LIMIT 1"
            )
            assert (rejected["reason"], rejected["body"], rejected["body_size"]) == (
                "payload_too_large",
                None,
                size,
            )


async def test_bad_authorization_is_401_and_leaves_nothing(app, conn, org_id):
    # The ASGI test client passes CR, LF and NUL in header values through unchanged (a real HTTP client
    # refuses to send them, and uvicorn to parse them: see tests/system/test_limits.py).
    for authorization in [
        [],
        [f"Bearer {SECRET}", f"Bearer {SECRET}"],
        [f"Bearer {SECRET}", "Bearer wrong"],
        [f"Bearer {SECRET}\r\nX-Injected: 1"],
        [f"Bearer {SECRET}\x00"],
        [f"Bearer\t{SECRET}"],
        [f"Bearer {SECRET[:-1]}"],
        [f"Bearer {SECRET}x"],
        ["Bearer " + "x" * 10_000],
    ]:
        for kind in KINDS:
            headers = [("Content-Type", "application/json"), *(("Authorization", v) for v in authorization)]
            before = await counts(conn)
            response = await app.post(PATHS[kind], content=body_for(kind, org_id), headers=headers)
            assert response.status_code == 401, authorization
            assert_safe(response.status_code, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert await counts(conn) == before


async def test_the_content_type_never_decides_acceptance_but_must_be_a_header_value(app, conn, org_id):
    # The body decides: a JSON body is JSON whatever it is labelled (MightyCall's label is kept as sent,
    # cut at 200 characters). Control characters are refused: NUL made the append fail (a 500), and CR/LF
    # would have gone back out as a header of /audit/events/{id}/raw.
    for n, (content_type, status) in enumerate(
        [
            (None, 202),
            ("text/plain", 202),
            ("application/x-www-form-urlencoded", 202),
            ("application/json; charset=latin-1", 202),
            ("x" * 5000, 202),
            ("application/json\x00", 400),
            ("application/json\r\nX-Injected: 1", 400),
            ("text/plain\r\n;a=b", 400),
            ("application/json\n", 400),
        ]
    ):
        body = body_for("calls", org_id, call_id=f"ct-{n}")
        headers = {"Authorization": f"Bearer {SECRET}"} | (
            {"Content-Type": content_type} if content_type else {}
        )
        before = await counts(conn)
        response = await app.post(PATHS["calls"], content=body, headers=headers)
        assert response.status_code == status, (content_type, response.text)
        assert_safe(response.status_code, response.text)
        if status == 202:
            event_id = response.json()["event_id"]
            stored = await conn.fetchval("SELECT content_type FROM event_log WHERE id = $1", event_id)
            assert stored == (content_type[:200] if content_type else None)
        else:
            assert "Content-Type" in response.json()["details"]
            assert await counts(conn) == (before[0], before[1] + 1)
            stored = await conn.fetchval(
                "SELECT content_type FROM rejected_deliveries ORDER BY id DESC LIMIT 1"
            )
            assert stored is None
    # Form bodies are not parsed as forms: not JSON, so refused.
    for body in (b"a=1&b=2", b"--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--"):
        error = await assert_refused(
            app, conn, "calls", body, **{"Content-Type": "multipart/form-data; boundary=x"}
        )
        assert "JSON" in error["details"]


async def test_raw_never_echoes_a_stored_content_type_with_a_line_break(app, conn, org_id):
    # Regression: the check of what /raw may send back allowed \s, so CR and LF, around `;`. An event
    # stored with such a type (below HTTP: the webhooks now refuse it) is answered as octet-stream.
    body = body_for("calls", org_id)
    async with conn.transaction():
        [appended] = await append(
            conn,
            [
                Delivery(
                    kind="calls",
                    event_type="call.completed",
                    org_id=org_id,
                    external_id="call_12345",
                    content_type="text/plain\r\n;set-cookie=a",
                    body=body,
                    body_sha256=hashlib.sha256(body).digest(),
                    received_at=dt.datetime.now(dt.UTC),
                )
            ],
        )

    response = await app.get(f"/audit/events/{appended.event_id}/raw", headers=audit_auth())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == body


async def test_values_that_would_stop_a_projection_for_good_are_400(app, conn, org_id):
    # Regression: these were accepted, then the live projector could never apply them (a timestamp
    # outside PostgreSQL's range once in UTC; a key over the 2704 bytes a btree entry holds) and stopped
    # `calls` and `recordings` at that event for ever: the log cannot be changed.
    for kind, changes, field in [
        ("calls", {"timestamp": "9999-12-31T23:59:59-23:59"}, "$.timestamp"),
        ("recordings", {"timestamp": "0001-01-01T00:00:00+00:01"}, "$.timestamp"),
        ("sms", {"timestamp": "9999-12-31T23:30:00-01:00"}, "$.timestamp"),
        ("recordings", {"url": "https://r.example/" + "a" * 2048}, "$.url"),
        ("recordings", {"call_id": "é" * 255, "url": "https://r.example/" + "u" * 1600}, "$.url"),
        ("calls", {"recording_url": "https://r.example/" + "a" * 2048}, "$.recording_url"),
    ]:
        error = await assert_refused(app, conn, kind, body_for(kind, org_id, **changes))
        assert field in error["details"], (changes, error)


async def test_values_at_every_limit_are_projected_and_readable(settings, db_url, conn, org_id):
    """The other side of each limit: accepted, projected by the live projector without stopping it,
    and answered by the audit API (trace included)."""
    configured = dataclasses.replace(settings, audit_tokens=((ALL_TOKEN, None),))
    long_url = "https://r.example/" + "u" * (2048 - len("https://r.example/") - len("call_edge"))
    bodies = [
        (
            "calls",
            body_for(
                "calls", org_id, call_id="call_edge", timestamp="9999-12-31T23:59:59Z", recording_url=long_url
            ),
        ),
        ("calls", body_for("calls", org_id, call_id="call_min", timestamp="0001-01-01T00:00:00Z")),
        ("recordings", body_for("recordings", org_id, call_id="call_edge", url=long_url)),
        (
            "sms",
            body_for("sms", org_id)[:-1] + b',"x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}",
        ),
        (
            "reports",
            body_for("reports", org_id)[:-1] + b',"x":[1e999,-1e-999,"\\\\u0000",' + b"9" * 1000 + b"]}",
        ),
    ]
    async with AsyncTestClient(app=create_app(configured, db_url)) as client:
        for kind, body in bodies:
            await assert_accepted(client, conn, kind, body)
        async with asyncio.timeout(20):
            while (
                await conn.fetchval(
                    "SELECT count(*) FROM projection_checkpoints WHERE position = 5 AND error IS NULL"
                )
                < 4
            ):
                errors = await conn.fetch(
                    "SELECT name, error FROM projection_checkpoints WHERE error IS NOT NULL"
                )
                assert not errors, errors
                await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT count(*) FROM mightycall_recordings WHERE url = $1", long_url) == 1
        for table, key in (
            ("calls", "call_edge"),
            ("mightycall_recordings", "call_edge"),
            ("mightycall_sms_messages", "sms_12345"),
        ):
            trace = await client.get(
                "/audit/trace",
                params={"table": table, "key": key, "org_id": str(org_id)},
                headers=audit_auth(),
            )
            assert trace.status_code == 200, trace.text
            assert trace.json()["events"]
        listing = await client.get("/audit/events", headers=audit_auth())
        assert [event["id"] for event in listing.json()["events"]] == [1, 2, 3, 4, 5]
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text


# --- the audit API --------------------------------------------------------------------------------------


odd_names = st.one_of(
    st.sampled_from(["org", "page", "LIMIT", "kind[]", "", "\x00", "a" * 100, "limit "]), st.text(max_size=8)
)


query_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "-1",
            "0",
            "1",
            str(MAX_LIMIT),
            str(MAX_LIMIT + 1),
            str(2**63 - 1),
            str(2**63),
            str(2**70),
            "9" * 5000,
            "1e3",
            " 5",
            "1_0",
            "\x00",
            "a\x00b",
            "calls",
            "faxes",
            "call.completed",
            "2024-01-20T14:30:00Z",
            "2024-01-20T14:30:00",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "00000000-0000-0000-0000-000000000000",
            "calls",
            "mightycall_recordings",
            "call_12345",
        ]
    ),
)


@pytest.fixture
async def with_events(app, conn, org_id):
    for kind in KINDS:
        await assert_accepted(app, conn, kind, body_for(kind, org_id))
    await assert_refused(app, conn, "calls", b"not json")


@settings(HYPOTHESIS, max_examples=60)
@given(
    path=st.sampled_from([*AUDIT_PATHS, "/audit/trace"]),
    token=st.sampled_from([ALL_TOKEN, ORG_TOKEN]),
    data=st.data(),
)
async def test_any_query_on_the_audit_api_is_answered_or_refused_cleanly(
    app, conn, with_events, path, token, data
):
    # Mostly the names the endpoint knows, so that their values are what gets tried.
    known = sorted(AUDIT_PARAMS[path])
    names = st.one_of(st.sampled_from(known), st.sampled_from(known), odd_names) if known else odd_names
    params = data.draw(st.lists(st.tuples(names, query_values), max_size=4), label="params")
    if params and data.draw(st.booleans(), label="repeat one"):
        params.append((params[0][0], data.draw(query_values, label="repeated value")))
    before = await counts(conn)

    response = await app.get(path, params=params, headers=audit_auth(token))

    assert_safe(response.status_code, response.text)
    names = [name for name, _ in params]
    if token == ORG_TOKEN and path in ("/audit/verify", "/audit/checkpoint"):
        assert response.status_code == 403  # refused whatever is asked: the whole log's head
    elif set(names) - AUDIT_PARAMS[path]:
        assert response.status_code == 400
        assert "unknown query parameter" in response.json()["details"]
    elif len(set(names)) < len(names):
        assert response.status_code == 400
        assert "more than once" in response.json()["details"]
    else:
        assert response.status_code in (200, 400), response.text
    assert await counts(conn) == before  # the audit API reads only


@HYPOTHESIS
@given(
    event_id=st.one_of(
        st.integers(), st.text(max_size=12), st.sampled_from([str(2**63), str(2**70), "1e3", "-0"])
    ),
    raw=st.booleans(),
)
async def test_any_event_id_is_answered_or_refused_cleanly(app, conn, with_events, event_id, raw):
    path = f"/audit/events/{urllib.parse.quote(str(event_id), safe='')}" + ("/raw" if raw else "")

    response = await app.get(path, headers=audit_auth())

    assert_safe(response.status_code, response.text if response.status_code >= 400 else "")
    assert response.status_code in (200, 404), response.text


async def event_ids_outside_the_log_are_404(app: AsyncTestClient[Any]) -> None:
    # Regression: ids over PostgreSQL's bigint failed to encode: a 500.
    for event_id in (0, -1, 2**63 - 1, 2**63, 2**70, 10**40):
        for suffix in ("", "/raw"):
            response = await app.get(f"/audit/events/{event_id}{suffix}", headers=audit_auth())
            assert response.status_code == 404, (event_id, suffix)
            assert_safe(response.status_code, response.text)


async def times_outside_what_utc_can_hold_are_400(app: AsyncTestClient[Any]) -> None:
    # Regression: a 500, and from /audit/export a 200 whose stream broke after it had started.
    for path in ("/audit/events", "/audit/export", "/audit/rejected"):
        for name in ("since", "until"):
            for moment in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
                response = await app.get(path, params={name: moment}, headers=audit_auth())
                assert response.status_code == 400, (path, name, moment)
                assert_safe(response.status_code, response.text)
                assert f"`{name}`" in response.json()["details"]


async def nul_in_a_query_value_is_400(app: AsyncTestClient[Any]) -> None:
    # Regression: PostgreSQL refused the text and the API answered 500.
    for path, params in [
        ("/audit/events", {"event_type": "call.\x00"}),
        ("/audit/events", {"external_id": "a\x00b"}),
        ("/audit/export", {"event_type": "\x00"}),
        ("/audit/trace", {"table": "calls", "key": "\x00", "org_id": "00000000-0000-0000-0000-000000000000"}),
    ]:
        response = await app.get(path, params=params, headers=audit_auth())
        assert response.status_code == 400, (path, params)
        assert_safe(response.status_code, response.text)
        assert "NUL" in response.json()["details"]


async def a_parameter_given_twice_is_400(app: AsyncTestClient[Any]) -> None:
    # Before, the last one counted silently: `kind=calls&kind=sms` answered the sms events alone.
    for query in (
        "limit=1&limit=1000",
        "kind=calls&kind=sms",
        "org_id=00000000-0000-0000-0000-000000000000&org_id=",
    ):
        response = await app.get(f"/audit/events?{query}", headers=audit_auth())
        assert response.status_code == 400, query
        assert_safe(response.status_code, response.text)
        assert "more than once" in response.json()["details"]


async def page_size_outside_1_to_max_is_refused_not_clamped(app: AsyncTestClient[Any]) -> None:
    for path in ("/audit/events", "/audit/rejected"):
        for limit in (str(MAX_LIMIT + 1), str(10**6), str(2**64), "9" * 5000, "0", "-1", "1e3", "abc"):
            response = await app.get(path, params={"limit": limit}, headers=audit_auth())
            assert response.status_code == 400, (path, limit)
            assert_safe(response.status_code, response.text)
            assert "`limit`" in response.json()["details"]
        response = await app.get(path, params={"limit": str(MAX_LIMIT)}, headers=audit_auth())
        assert response.status_code == 200


async def absurd_cursors_are_refused_and_the_largest_is_an_empty_last_page(app: AsyncTestClient[Any]) -> None:
    for after in (str(2**63), "9" * 5000, "-1", "1.5"):
        response = await app.get("/audit/events", params={"after": after}, headers=audit_auth())
        assert response.status_code == 400, after
        assert_safe(response.status_code, response.text)
        assert "`after`" in response.json()["details"]
    response = await app.get(
        "/audit/events", params={"after": str(2**63 - 1), "limit": str(MAX_LIMIT)}, headers=audit_auth()
    )
    assert response.status_code == 200
    assert response.json() == {"events": [], "next_after": None}


# One database for each group (a database per rule would cost ~0.4 s each).


async def test_audit_values_that_were_a_500_are_404_or_400(app, with_events):
    await event_ids_outside_the_log_are_404(app)
    await times_outside_what_utc_can_hold_are_400(app)
    await nul_in_a_query_value_is_400(app)


async def test_audit_parameters_are_refused_when_repeated_or_out_of_range(app, with_events):
    await a_parameter_given_twice_is_400(app)
    await page_size_outside_1_to_max_is_refused_not_clamped(app)
    await absurd_cursors_are_refused_and_the_largest_is_an_empty_last_page(app)
