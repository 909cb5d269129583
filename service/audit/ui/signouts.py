"""Signing out of the audit page on every process: the session cookies are stateless (any process
accepts what another signed), so a signed-out one is listed in the database (alembic 0008) and every
page checks the list. Listed by its sha256: the table never holds a value that would open the page."""

from __future__ import annotations

import datetime as dt
import hashlib

import asyncpg

__all__ = ["is_signed_out", "sign_out"]


def _digest(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()


async def sign_out(conn: asyncpg.Connection, cookie: str, expiry: int) -> None:
    """`expiry`: the cookie's own (unix seconds); past it the cookie is refused anyway, and its row may
    be deleted by whoever prunes the table."""
    await conn.execute(
        "INSERT INTO audit_ui_signouts (cookie_sha256, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        _digest(cookie),
        dt.datetime.fromtimestamp(expiry, dt.UTC),
    )


async def is_signed_out(conn: asyncpg.Connection, cookie: str) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM audit_ui_signouts WHERE cookie_sha256 = $1", _digest(cookie)
    )
    return bool(found)
