"""The audit page's session: signing out ends it on every process, not only in that browser; and the
cookie is Secure whenever the page was reached over HTTPS (here: through a proxy uvicorn trusts)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from service.app import create_app
from service.audit.ui.session import COOKIE
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, audited_client, served


def _signed_in(text: str) -> bool:
    return 'id="sign-out"' in text


async def _sign_in(client, token: str = ALL_TOKEN) -> str:
    response = await client.post("/audit/ui/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    value = response.cookies[COOKIE]
    client.cookies.clear()
    return value


async def test_signing_out_ends_the_session_on_every_process(settings, db_url, org_id):
    async with (
        audited_client(settings, db_url, org_id) as one,
        audited_client(settings, db_url, org_id) as other,
    ):
        value = await _sign_in(one)
        kept = await _sign_in(one)  # another browser, same token, same second
        assert value != kept
        for client in (one, other):
            assert _signed_in((await client.get("/audit/ui", headers={"Cookie": f"{COOKIE}={value}"})).text)

        out = await one.post(
            "/audit/ui/logout", headers={"Cookie": f"{COOKIE}={value}"}, follow_redirects=False
        )
        assert out.status_code == 303
        one.cookies.clear()

        # A copy of the cookie (kept by the browser, or by whoever took it) opens nothing anywhere.
        for client in (one, other):
            for path in ("/audit/ui", "/audit/ui/rejected", "/audit/ui/status", "/audit/ui/events/1"):
                response = await client.get(path, headers={"Cookie": f"{COOKIE}={value}"})
                assert not _signed_in(response.text), path
                client.cookies.clear()
        # The other session, and a new sign-in, are untouched.
        assert _signed_in((await other.get("/audit/ui", headers={"Cookie": f"{COOKIE}={kept}"})).text)
        fresh = await _sign_in(one)
        assert _signed_in((await other.get("/audit/ui", headers={"Cookie": f"{COOKIE}={fresh}"})).text)


@pytest.mark.parametrize(
    ("options", "headers", "secure"),
    [
        ({}, {}, False),  # plain HTTP: a Secure cookie would be dropped by the browser
        ({}, {"X-Forwarded-Proto": "https"}, True),  # from 127.0.0.1, which uvicorn trusts by default
        ({"forwarded_allow_ips": "192.0.2.1"}, {"X-Forwarded-Proto": "https"}, False),  # not trusted
    ],
)
async def test_the_cookie_is_secure_when_the_page_was_reached_over_https(
    settings, db_url, org_id, options, headers, secure
):
    configured = dataclasses.replace(
        settings, audit_tokens=((ALL_TOKEN, None), (ORG_TOKEN, org_id)), run_projector=False
    )
    async with (
        served(create_app(configured, db_url), **options) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        login = await client.post("/audit/ui/login", data={"token": ALL_TOKEN}, headers=headers)
        value = login.cookies[COOKIE]
        logout = await client.post("/audit/ui/logout", headers={**headers, "Cookie": f"{COOKIE}={value}"})
    for response in (login, logout):
        assert response.status_code == 303
        flags = {part.strip().lower() for part in response.headers["set-cookie"].split(";")[1:]}
        assert ("secure" in flags) is secure, flags
