"""Authentication over HTTP, against near misses: a wrong secret of the right length, a prefix, the
secret with a suffix; each credential opens only its own API; and no credential (nor a near miss of
one, which is almost a secret) is ever stored, answered or logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from service.core.config import Settings
from service.core.logs import JsonFormatter
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, SECRETS, assert_safe, audited_client, counts
from tests.support.http import AUDIT_PATHS, SECOND_SECRET, SECRET
from tests.support.payloads import PATHS, body_for


def near_misses(secret: str) -> list[str]:
    wrong_same_length = "".join("x" if c != "x" else "y" for c in secret)
    return [
        wrong_same_length,
        secret[:-1],
        secret[: len(secret) // 2],
        secret + "x",
        secret + secret,
        secret[:-1] + chr(ord(secret[-1]) ^ 1),  # one bit off, in the last character
        secret.upper() if secret.upper() != secret else secret.lower(),
        f"{secret},{SECOND_SECRET}",
    ]


WEBHOOK_MISSES = near_misses(SECRET) + near_misses(SECOND_SECRET)
AUDIT_MISSES = near_misses(ALL_TOKEN) + near_misses(ORG_TOKEN)


@pytest.fixture
async def app(settings: Settings, db_url: str, org_id: uuid.UUID) -> AsyncIterator[AsyncTestClient[Any]]:
    async with audited_client(settings, db_url, org_id) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def test_near_misses_of_a_webhook_secret_open_no_endpoint(app, conn, org_id):
    before = await counts(conn)
    for token in WEBHOOK_MISSES:
        for kind in PATHS:
            response = await app.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer(token))
            assert response.status_code == 401, (token, kind)
            assert_safe(response.status_code, response.text, extra_secrets=[token])
    assert await counts(conn) == before  # not even recorded as rejected: anyone can send these
    for secret in (SECRET, SECOND_SECRET):  # while the right ones do
        response = await app.post(
            PATHS["sms"], content=body_for("sms", org_id, sms_id=secret[:4]), headers=bearer(secret)
        )
        assert response.status_code == 202


async def test_near_misses_of_an_audit_token_open_nothing(app):
    for token in AUDIT_MISSES:
        for path in AUDIT_PATHS:
            response = await app.get(path, headers=bearer(token))
            assert response.status_code == 401, (token, path)
            assert_safe(response.status_code, response.text, extra_secrets=[token])
    for token in (ALL_TOKEN, ORG_TOKEN):
        assert (await app.get("/audit/events", headers=bearer(token))).status_code == 200


async def test_each_credential_opens_only_its_own_api(app, conn, org_id):
    before = await counts(conn)
    for token in (ALL_TOKEN, ORG_TOKEN):
        for kind in PATHS:
            response = await app.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer(token))
            assert response.status_code == 401, (token, kind)
            assert_safe(response.status_code, response.text)
    assert await counts(conn) == before
    for secret in (SECRET, SECOND_SECRET):
        for path in AUDIT_PATHS:
            response = await app.get(path, headers=bearer(secret))
            assert response.status_code == 401, (secret, path)
            assert_safe(response.status_code, response.text)


async def _every_stored_row(conn: asyncpg.Connection) -> list[str]:
    """Every row of every table, as PostgreSQL writes it out (bytea as hex), and each bytea as text."""
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    rows = []
    for table in tables:
        name = table["table_name"].replace('"', '""')
        rows += [row[0] for row in await conn.fetch(f'SELECT t::text FROM "{name}" t')]
    rows += [
        bytes(row[0]).decode("utf-8", "replace")
        for row in await conn.fetch(
            "SELECT body FROM event_log UNION ALL SELECT body FROM rejected_deliveries WHERE body IS NOT NULL"
        )
    ]
    return rows


async def test_no_credential_or_near_miss_is_stored_answered_or_logged(app, conn, org_id, caplog):
    caplog.set_level(logging.DEBUG)
    answers = []
    for kind in PATHS:
        for secret in (SECRET, SECOND_SECRET):  # accepted, refused after authentication, refused before
            answers.append(
                await app.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer(secret))
            )
            answers.append(await app.post(PATHS[kind], content=b"{not json", headers=bearer(secret)))
            answers.append(
                await app.post(PATHS[kind], content=body_for(kind, org_id)[:10] * 3, headers=bearer(secret))
            )
        for token in [*WEBHOOK_MISSES, ALL_TOKEN]:
            answers.append(await app.post(PATHS[kind], content=body_for(kind, org_id), headers=bearer(token)))
    for path in AUDIT_PATHS:
        for token in [ALL_TOKEN, ORG_TOKEN, SECRET, *AUDIT_MISSES]:
            answers.append(await app.get(path, headers=bearer(token)))
    assert {response.status_code for response in answers} >= {200, 202, 400, 401}

    forbidden = [*SECRETS, *WEBHOOK_MISSES, *AUDIT_MISSES]
    stored = await _every_stored_row(conn)
    assert any("call.completed" in row for row in stored)  # the dump sees what is there
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any('"outcome":"accepted"' in line for line in lines)
    assert any('"outcome":"unauthorized"' in line for line in lines)
    for token in forbidden:
        hex_token = token.encode().hex()
        for row in stored:
            assert token not in row and hex_token not in row, token
        for line in lines:
            assert token not in line, (token, line)
        for response in answers:
            if response.status_code >= 400:
                assert token not in response.text
            assert all(token not in value for value in response.headers.values())
