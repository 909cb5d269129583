"""/audit/ui, the audit page: in a real headless Chromium against the app served by uvicorn on a local port,
and over plain HTTP for what a browser hides (status codes, headers, the cookie's rules).

Webhooks are posted through the real endpoints; some carry markup, which must show as text, never run."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import html
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from projections.registry import PROJECTIONS
from service.app import create_app
from service.audit.ui.session import COOKIE, MAX_AGE_S
from service.core.config import Settings
from service.eventlog.verify import take_checkpoint
from tests.support.browser import chromium, click_and_wait
from tests.support.cli import ROOT
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, audited_client, served
from tests.support.http import SECRET, bearer
from tests.support.payloads import DROP, PATHS, body_for

SCREENSHOT = ROOT / "var" / "test-artifacts" / "audit-ui.png"
HOSTILE_MESSAGE = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
HOSTILE_SMS_ID = 'sms-"><img src=x onerror=alert(2)>'
REJECTED_MESSAGE = "<script>alert(3)</script>"
_Client = AsyncTestClient[Any]


def mint(token: str, expiry: int, nonce: str | None = None) -> str:
    """A cookie value as the README's format says: any process holding `token` makes the same one
    (without a nonce: the format of the cookies issued before it, still accepted)."""
    key = hashlib.sha256(token.encode()).digest()
    if nonce is None:
        return f"{expiry}.{hmac.new(key, f'audit-ui|{expiry}'.encode(), hashlib.sha256).hexdigest()}"
    signature = hmac.new(key, f"audit-ui|{expiry}|{nonce}".encode(), hashlib.sha256).hexdigest()
    return f"{expiry}.{nonce}.{signature}"


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


def attributes(set_cookie: str) -> tuple[str, set[str]]:
    """(name=value, the attributes in lower case: their names and SameSite's value are case-insensitive)."""
    pair, *rest = set_cookie.split("; ")
    return pair, {attribute.lower() for attribute in rest}


def csp_directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: its sources}; names are case-insensitive, the first of a
    repeated directive is the one browsers obey."""
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        if words := part.split():
            directives.setdefault(words[0].lower(), words[1:])
    return directives


def security_header_faults(response: httpx.Response) -> list[str]:
    """How the answer breaks the page's contract, written here rather than read from the code: pages show
    webhook payloads, attacker-controlled text, so no script may run at all, nothing may frame them, no
    URL (which carries filters such as an external id) may leak as a referrer, no cache may keep them,
    and nothing may be sniffed into another type."""
    csp = csp_directives(response.headers.get("content-security-policy", ""))
    script = csp.get("script-src", csp.get("default-src"))
    # script-src-elem and -attr fall back to script-src; either, if present, could allow script again.
    scripts = [script] + [csp[name] for name in ("script-src-elem", "script-src-attr") if name in csp]
    cache_control = {d.strip().lower() for d in response.headers.get("cache-control", "").split(",")}
    checks = {
        "script can run": all(sources == ["'none'"] for sources in scripts),
        "plugins can load": csp.get("object-src", csp.get("default-src")) == ["'none'"],
        "another site can frame it": csp.get("frame-ancestors") == ["'none'"],
        "the URL leaks as a referrer": response.headers.get("referrer-policy") == "no-referrer",
        "a cache may keep it": "no-store" in cache_control,
        "its type may be sniffed": response.headers.get("x-content-type-options") == "nosniff",
    }
    return [fault for fault, holds in checks.items() if not holds]


def is_login_form(text: str) -> bool:
    return 'name="token"' in text and 'id="sign-out"' not in text


@pytest.fixture
async def other_org(conn: asyncpg.Connection) -> uuid.UUID:
    org = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Globex')", org)
    return org


async def post_webhooks(client: httpx.AsyncClient | _Client, org_id: uuid.UUID, other_org: uuid.UUID) -> None:
    """Events 1-3 (a call and a hostile SMS in `org_id`, an SMS in `other_org`) and one rejected SMS."""
    for kind, body in (
        ("calls", body_for("calls", org_id, call_id="call-1")),
        ("sms", body_for("sms", org_id, sms_id=HOSTILE_SMS_ID, message=HOSTILE_MESSAGE)),
        ("sms", body_for("sms", other_org, sms_id="sms-other")),
    ):
        response = await client.post(PATHS[kind], content=body, headers=bearer())
        assert response.status_code == 202, response.text
    refused = body_for("sms", org_id, sms_id=DROP, message=REJECTED_MESSAGE)
    assert (await client.post(PATHS["sms"], content=refused, headers=bearer())).status_code == 400


@pytest.fixture
async def ui(
    settings: Settings, db_url: str, org_id: uuid.UUID, other_org: uuid.UUID
) -> AsyncIterator[_Client]:
    async with audited_client(settings, db_url, org_id) as client:
        await post_webhooks(client, org_id, other_org)
        client.follow_redirects = False  # the answers to the forms are what is tested
        yield client


async def sign_in(client: _Client, token: str) -> str:
    """The cookie value the sign-in form gives for `token`; the client keeps no cookie of its own."""
    response = await client.post("/audit/ui/login", data={"token": token})
    assert response.status_code == 303, response.text
    value = response.cookies[COOKIE]
    client.cookies.clear()
    return value


# --- in the browser ---------------------------------------------------------------------------------


def assert_nothing_injected(driver: WebDriver) -> None:
    assert driver.find_elements(By.TAG_NAME, "script") == []
    assert driver.find_elements(By.TAG_NAME, "img") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is what raises when there is none


def browse(base: str, expected: dict[str, Any]) -> None:
    """What an auditor does, start to end, in one browser (run in a thread: the server shares the loop)."""
    with chromium() as driver:
        driver.get(f"{base}/audit/ui")
        assert driver.find_elements(By.ID, "token"), driver.page_source
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        click_and_wait(driver, driver.find_element(By.ID, "sign-in"))
        assert driver.find_element(By.ID, "login-error").text == "That token was not accepted."
        assert driver.find_elements(By.ID, "token") and "not-the-token" not in driver.page_source
        assert driver.get_cookie(COOKIE) is None

        driver.find_element(By.ID, "token").send_keys(ALL_TOKEN)
        click_and_wait(driver, driver.find_element(By.ID, "sign-in"))
        assert driver.find_element(By.ID, "signed-in").text == "Signed in for all organizations"
        session = driver.get_cookie(COOKIE)
        assert session is not None
        assert (session["httpOnly"], session["sameSite"], session["path"]) == (True, "Strict", "/audit/ui")
        assert ALL_TOKEN not in session["value"]
        assert abs(session["expiry"] - (time.time() + MAX_AGE_S)) < 120
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [row.find_element(By.TAG_NAME, "a").text for row in rows] == ["1", "2", "3"]

        # Filtering by the hostile id puts it back into an attribute, the input's value.
        Select(driver.find_element(By.ID, "f-kind")).select_by_value("sms")
        driver.find_element(By.ID, "f-external_id").send_keys(HOSTILE_SMS_ID)
        click_and_wait(driver, driver.find_element(By.ID, "filter"))
        assert driver.find_element(By.ID, "f-external_id").get_attribute("value") == HOSTILE_SMS_ID
        [row] = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert HOSTILE_SMS_ID in row.text
        assert_nothing_injected(driver)

        click_and_wait(driver, row.find_element(By.TAG_NAME, "a"))
        assert driver.find_element(By.ID, "raw-body").text == expected["body"]
        envelope = driver.find_element(By.ID, "envelope").text
        for field in ("body_sha256", "prev_hash", "hash"):
            assert f"{field}\n{expected[field]}" in envelope
        assert f"external_id\n{HOSTILE_SMS_ID}" in envelope
        assert driver.find_element(By.ID, "sha-check").text == "the body matches its sha256"
        assert_nothing_injected(driver)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))

        click_and_wait(driver, driver.find_element(By.LINK_TEXT, "Rejected deliveries"))
        [rejected] = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert "invalid_payload" in rejected.text and "sms_id" in rejected.text
        assert REJECTED_MESSAGE in rejected.find_element(By.TAG_NAME, "pre").text
        assert_nothing_injected(driver)

        click_and_wait(driver, driver.find_element(By.LINK_TEXT, "Projections and verification"))
        status = {
            row.find_elements(By.TAG_NAME, "td")[0].text: [
                td.text for td in row.find_elements(By.TAG_NAME, "td")
            ]
            for row in driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        }
        # No projector runs beside this app: every projection is 3 events behind.
        assert status == {
            name: [name, str(p.version), "0", "3", "catching up"] for name, p in PROJECTIONS.items()
        }
        assert driver.find_element(By.ID, "head").text.startswith("3 events")
        assert driver.find_element(By.ID, "checkpoint").text.endswith("the log still holds it.")

        click_and_wait(driver, driver.find_element(By.ID, "sign-out"))
        assert driver.find_elements(By.ID, "token") and not driver.find_elements(By.ID, "sign-out")
        assert driver.get_cookie(COOKIE) is None
        driver.get(f"{base}/audit/ui/events/2")
        assert driver.find_elements(By.ID, "token") and "alert" not in driver.page_source

        # An organization's auditor: its own events only, and another's is not there at all.
        driver.find_element(By.ID, "token").send_keys(ORG_TOKEN)
        click_and_wait(driver, driver.find_element(By.ID, "sign-in"))
        assert driver.find_element(By.ID, "signed-in").text == f"Signed in for organization {expected['org']}"
        rows = driver.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [row.find_element(By.TAG_NAME, "a").text for row in rows] == ["1", "2"]
        driver.get(f"{base}/audit/ui/events/3")
        assert driver.title.startswith("404")
        assert driver.find_element(By.ID, "error").text == "no event 3"
        assert "sms-other" not in driver.page_source


async def test_an_auditor_browses_filters_opens_an_event_and_signs_out(
    settings, db_url, conn, org_id, other_org
):
    """The whole page in Chromium, over a real socket. Leaves a screenshot of the hostile SMS's event page
    in var/test-artifacts/audit-ui.png."""
    configured = dataclasses.replace(
        settings, audit_tokens=((ALL_TOKEN, None), (ORG_TOKEN, org_id)), run_projector=False
    )
    async with served(create_app(configured, db_url)) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await post_webhooks(client, org_id, other_org)
        await take_checkpoint(conn)
        row = await conn.fetchrow("SELECT body, body_sha256, prev_hash, hash FROM event_log WHERE id = 2")
        expected = {
            "org": str(org_id),
            "body": bytes(row["body"]).decode(),
            **{field: bytes(row[field]).hex() for field in ("body_sha256", "prev_hash", "hash")},
        }
        assert HOSTILE_MESSAGE in json.loads(expected["body"])["message"]
        await asyncio.to_thread(browse, base, expected)
    assert SCREENSHOT.stat().st_size > 0


# --- over HTTP --------------------------------------------------------------------------------------


async def test_signing_in_sets_a_signed_cookie_that_never_holds_the_token(ui, caplog):
    response = await ui.post("/audit/ui/login", data={"token": f"  {ALL_TOKEN}\n"})

    assert response.status_code == 303
    assert response.headers["location"] == "/audit/ui"
    set_cookie = response.headers["set-cookie"]
    pair, flags = attributes(set_cookie)
    assert flags == {"httponly", f"max-age={MAX_AGE_S}", "path=/audit/ui", "samesite=strict"}, set_cookie
    value = response.cookies[COOKIE]
    assert pair == f"{COOKIE}={value}"
    assert re.fullmatch(r"\d+\.[0-9a-f]{16}\.[0-9a-f]{64}", value)
    expiry, nonce = int(value.split(".")[0]), value.split(".")[1]
    assert abs(expiry - (time.time() + MAX_AGE_S)) < 60
    assert value == mint(ALL_TOKEN, expiry, nonce)
    assert ALL_TOKEN not in set_cookie
    assert ALL_TOKEN not in caplog.text


@pytest.mark.parametrize("token", ["", "wrong-token-xyz", ALL_TOKEN + "x", SECRET, ALL_TOKEN[:-1]])
async def test_a_wrong_token_gets_the_form_again_with_401(ui, caplog, token):
    response = await ui.post("/audit/ui/login", data={"token": token})

    assert response.status_code == 401
    assert is_login_form(response.text)
    assert "That token was not accepted." in response.text
    assert "set-cookie" not in response.headers
    if token:
        assert token not in response.text
        assert token not in caplog.text


async def test_a_cookie_from_one_process_opens_the_page_in_another(ui, settings, db_url, org_id):
    value = await sign_in(ui, ALL_TOKEN)

    async with audited_client(settings, db_url, org_id) as other_process:
        response = await other_process.get("/audit/ui", headers=cookie(value))

    assert response.status_code == 200
    assert 'id="sign-out"' in response.text
    assert "/audit/ui/events/3" in response.text


def _tampered(value: str) -> str:
    signed, signature = value.rsplit(".", 1)
    return f"{signed}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}"


@pytest.mark.parametrize(
    "forged",
    [
        lambda now: _tampered(mint(ALL_TOKEN, now + 3600)),
        lambda now: f"{now + 7200}.{mint(ALL_TOKEN, now + 3600).split('.')[1]}",  # another expiry, same MAC
        lambda now: mint(ALL_TOKEN, now - 1),  # expired
        lambda now: mint(ALL_TOKEN, now + 30 * 24 * 3600),  # longer than any session the page gives
        lambda now: mint("audit-token-no-longer-configured", now + 3600),
        lambda now: mint(SECRET, now + 3600),  # a webhook secret is no audit token
        lambda now: ALL_TOKEN,
        lambda now: "",
        lambda now: mint(ALL_TOKEN, now + 3600).upper(),
    ],
    ids=[
        "tampered",
        "other-expiry",
        "expired",
        "too-far",
        "unknown-token",
        "webhook-secret",
        "token",
        "empty",
        "upper",
    ],
)
async def test_a_forged_expired_or_foreign_cookie_gets_the_login_form(ui, forged):
    now = int(time.time())
    assert (await ui.get("/audit/ui", headers=cookie(mint(ALL_TOKEN, now + 3600)))).status_code == 200

    for path in ("/audit/ui", "/audit/ui/events/1", "/audit/ui/rejected", "/audit/ui/status"):
        response = await ui.get(path, headers=cookie(forged(now)))

        assert response.status_code == 200, path
        assert is_login_form(response.text), path
        assert "call-1" not in response.text


async def test_signing_out_clears_the_cookie(ui):
    response = await ui.post("/audit/ui/logout", headers=cookie(await sign_in(ui, ALL_TOKEN)))

    assert response.status_code == 303
    assert response.headers["location"] == "/audit/ui"
    pair, flags = attributes(response.headers["set-cookie"])
    assert pair == f'{COOKIE}=""'
    assert flags == {"httponly", "max-age=0", "path=/audit/ui", "samesite=strict"}


async def test_forms_from_another_site_are_refused(ui):
    for path in ("/audit/ui/login", "/audit/ui/logout"):
        response = await ui.post(path, data={"token": ALL_TOKEN}, headers={"Sec-Fetch-Site": "cross-site"})

        assert response.status_code == 403
        assert "set-cookie" not in response.headers
    same_site = await ui.post(
        "/audit/ui/login", data={"token": ALL_TOKEN}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert same_site.status_code == 303


async def test_the_sign_in_form_is_bounded(ui):
    response = await ui.post("/audit/ui/login", data={"token": ALL_TOKEN, "pad": "x" * 5000})

    assert response.status_code == 413
    assert "set-cookie" not in response.headers
    assert security_header_faults(response) == []


async def test_every_answer_carries_the_security_headers(ui, org_id, other_org):
    value = await sign_in(ui, ALL_TOKEN)
    scoped = await sign_in(ui, ORG_TOKEN)
    answers = [
        (await ui.get("/audit/ui"), 200),
        (await ui.get("/audit/ui", headers=cookie(value)), 200),
        (await ui.get("/audit/ui/events/2", headers=cookie(value)), 200),
        (await ui.get("/audit/ui/events/3", headers=cookie(scoped)), 404),
        (await ui.get("/audit/ui/events/99", headers=cookie(value)), 404),
        (await ui.get("/audit/ui/rejected", headers=cookie(value)), 200),
        (await ui.get("/audit/ui/status", headers=cookie(value)), 200),
        (await ui.get("/audit/ui?kind=faxes", headers=cookie(value)), 400),
        (await ui.post("/audit/ui/login", data={"token": "nope"}), 401),
        (await ui.post("/audit/ui/login", data={"token": ALL_TOKEN}), 303),
        (await ui.post("/audit/ui/logout"), 303),
        (await ui.post("/audit/ui/login", headers={"Sec-Fetch-Site": "cross-site"}), 403),
    ]
    for response, status in answers:
        assert response.status_code == status, (response.request.url, response.text)
        assert security_header_faults(response) == [], response.request.url
        if status != 303:
            assert response.headers["content-type"] == "text/html; charset=utf-8"


async def test_markup_from_a_webhook_is_escaped(ui):
    value = await sign_in(ui, ALL_TOKEN)

    for path in ("/audit/ui", "/audit/ui/events/2", "/audit/ui/rejected"):
        text = (await ui.get(path, headers=cookie(value))).text
        assert "<script" not in text and "<img" not in text, path
    event = (await ui.get("/audit/ui/events/2", headers=cookie(value))).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in event
    assert "sms-&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in event


async def test_an_organizations_token_sees_only_its_own(ui):
    value = await sign_in(ui, ORG_TOKEN)

    listed = (await ui.get("/audit/ui", headers=cookie(value))).text
    assert re.findall(r'href="/audit/ui/events/(\d+)"', listed) == ["1", "2"]
    own = await ui.get("/audit/ui/events/2", headers=cookie(value))
    assert own.status_code == 200
    theirs = await ui.get("/audit/ui/events/3", headers=cookie(value))
    assert theirs.status_code == 404
    assert "sms-other" not in theirs.text
    rejected = (await ui.get("/audit/ui/rejected", headers=cookie(value))).text
    assert REJECTED_MESSAGE.replace("<", "&lt;").replace(">", "&gt;") not in rejected


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("kind=faxes", "kind"),
        ("org_id=nope", "org_id"),
        ("since=yesterday", "since"),
        ("until=2024-01-20T14:30:00", "until"),
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("org=x", "org"),
        ("kind=sms&kind=calls", "kind"),
    ],
)
async def test_bad_query_parameters_are_a_400_page_naming_them(ui, query, named):
    value = await sign_in(ui, ALL_TOKEN)

    response = await ui.get(f"/audit/ui?{query}", headers=cookie(value))

    assert response.status_code == 400
    error = re.search(r'<p class="error" id="error">(.*?)</p>', response.text)
    assert error is not None and re.search(rf"\b{named}\b", error[1]), response.text
    # Signed out, nothing is checked or said: only the form.
    signed_out = await ui.get(f"/audit/ui?{query}")
    assert signed_out.status_code == 200 and is_login_form(signed_out.text)


async def test_filters_and_pages_follow_the_audit_api(ui):
    value = await sign_in(ui, ALL_TOKEN)

    first = (await ui.get("/audit/ui?kind=sms&limit=1", headers=cookie(value))).text
    assert re.findall(r'href="/audit/ui/events/(\d+)"', first) == ["2"]
    [next_page] = re.findall(r'id="next" href="/audit/ui\?([^"]*)"', first)
    assert parse_qs(html.unescape(next_page)) == {"kind": ["sms"], "limit": ["1"], "after": ["2"]}
    second = (await ui.get("/audit/ui?kind=sms&limit=1&after=2", headers=cookie(value))).text
    assert re.findall(r'href="/audit/ui/events/(\d+)"', second) == ["3"]
    assert 'id="next"' not in second


async def test_without_audit_tokens_the_page_is_absent(client, org_id):
    for response in (
        await client.get("/audit/ui"),
        await client.get("/audit/ui/status", headers=cookie(mint(ALL_TOKEN, int(time.time()) + 60))),
        await client.post("/audit/ui/login", data={"token": ALL_TOKEN}),
    ):
        assert response.status_code == 404
        assert "set-cookie" not in response.headers


async def test_the_status_page_reads_projections_and_the_last_checkpoint(ui, conn):
    value = await sign_in(ui, ALL_TOKEN)

    async def checkpoint_text() -> str:
        response = await ui.get("/audit/ui/status", headers=cookie(value))
        assert response.status_code == 200
        found = re.search(r'<p id="checkpoint">(.*?)</p>', response.text)
        assert found is not None, response.text
        return found[1]

    assert "No checkpoint has been recorded yet" in await checkpoint_text()
    await take_checkpoint(conn)
    assert "the log still holds it" in await checkpoint_text()
    # Checkpoints an auditor would have been handed by a log that has been rewritten, or truncated since.
    await conn.execute("INSERT INTO audit_checkpoints (position, head_hash) VALUES (2, $1)", bytes(32))
    assert "the log no longer holds it" in await checkpoint_text()
    await conn.execute("INSERT INTO audit_checkpoints (position, head_hash) VALUES (9, $1)", bytes(32))
    assert "the log no longer holds it" in await checkpoint_text()

    await conn.execute(
        "UPDATE projection_checkpoints SET error = $1, error_position = 2 WHERE name = 'sms'",
        "<b>cannot apply</b>",
    )
    page = (await ui.get("/audit/ui/status", headers=cookie(value))).text
    assert "<td>stopped at event 2: &lt;b&gt;cannot apply&lt;/b&gt;</td>" in page
    calls = PROJECTIONS["calls"].version
    assert f"<td>calls</td><td>{calls}</td><td>0</td><td>3</td><td>catching up</td>" in page


async def test_the_status_page_shows_the_last_verification(ui, conn, org_id):
    value = await sign_in(ui, ALL_TOKEN)

    async def verification_text() -> tuple[str, str]:
        response = await ui.get("/audit/ui/status", headers=cookie(value))
        assert response.status_code == 200
        found = re.search(
            r'<p id="verification">(.*?)</p>(?:<p id="verification-since">(.*?)</p>)?', response.text
        )
        assert found is not None, response.text
        assert 'id="checkpoint"' in response.text
        return found[1], found[2] or ""

    assert await verification_text() == ("Never verified.", "")

    assert (await ui.get("/audit/verify", headers={"Authorization": f"Bearer {ALL_TOKEN}"})).json()["ok"]
    verified_at = await conn.fetchval("SELECT verified_at FROM audit_verifications")
    head = bytes(await conn.fetchval("SELECT hash FROM event_log_head")).hex()
    text, since = await verification_text()
    assert text == (
        f'<span class="ok">the log verified</span>: {verified_at.isoformat()},'
        f" by <code>GET /audit/verify</code>, covering 3 events up to hash <code>{head}</code>"
        " and 0 checkpoint(s)."
    )
    assert since == "0 events appended since."
    call = body_for("calls", org_id, call_id="call-after")
    assert (await ui.post(PATHS["calls"], content=call, headers=bearer())).status_code == 202
    assert (await verification_text())[1] == "1 event appended since."

    # What a failed verification recorded, its reason through the page's escaping like everything else.
    await conn.execute(
        "INSERT INTO audit_verifications (ok, head_position, head_hash, failure_position, failure_reason,"
        " checkpoints_checked, by) VALUES (false, 2, $1, 2, '<b>the envelope</b> & more', 1, 'cli')",
        bytes(32),
    )
    text, since = await verification_text()
    assert text.startswith(
        '<span class="error">FAILED at event 2: &lt;b&gt;the envelope&lt;/b&gt; &amp; more</span>: '
    )
    assert text.endswith(
        f", by <code>events verify</code>, covering 2 events up to hash <code>{'00' * 32}</code>"
        " and 1 checkpoint(s)."
    )
    assert since == "2 events appended since."
    # A head behind the one last verified: the log was cut back since, which the page does not hide.
    await conn.execute(
        "INSERT INTO audit_verifications (ok, head_position, head_hash, checkpoints_checked, by)"
        " VALUES (true, 9, $1, 0, 'cli')",
        bytes(32),
    )
    assert (await verification_text())[
        1
    ] == '<span class="error">the head has moved back 5 events since</span>.'
