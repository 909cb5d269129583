"""Bearer authentication of the webhooks (pure: no HTTP)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from service.core.errors import Unauthorized
from service.web.auth import BearerAuth

SECRET = "current-secret-0123456789abcdef"
ROTATED = "previous-secret-fedcba9876543210"
WRONG_SAME_LENGTH = "x" * len(SECRET)


@pytest.fixture
def auth() -> BearerAuth:
    return BearerAuth([SECRET, ROTATED])


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"Bearer {SECRET}", id="current"),
        pytest.param(f"Bearer {ROTATED}", id="rotated"),
        pytest.param(f"bearer {SECRET}", id="lowercase-scheme"),
        pytest.param(f"BEARER {ROTATED}", id="uppercase-scheme"),
        pytest.param(f"BeArEr {SECRET}", id="mixed-case-scheme"),
        pytest.param(f"  Bearer {SECRET}  ", id="surrounding-whitespace"),
    ],
)
def test_accepted(auth: BearerAuth, header: str) -> None:
    auth.check([header])  # no Unauthorized raised


@pytest.mark.parametrize("secret", [SECRET, ROTATED])
def test_each_secret_alone_accepts_only_itself(secret: str) -> None:
    other = ROTATED if secret == SECRET else SECRET
    single = BearerAuth([secret])
    single.check([f"Bearer {secret}"])
    with pytest.raises(Unauthorized):
        single.check([f"Bearer {other}"])


def test_lowercase_scheme_with_short_secret() -> None:
    BearerAuth(["x"]).check(["bearer x"])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([""], id="empty-header"),
        pytest.param([SECRET], id="token-without-scheme"),
        pytest.param([f"Basic {SECRET}"], id="basic-with-secret"),
        pytest.param(["Basic dXNlcjpwYXNz"], id="basic"),
        pytest.param([f"Token {SECRET}"], id="other-scheme"),
        pytest.param([f"Bearer{SECRET}"], id="no-space"),
        pytest.param(["Bearer "], id="bearer-empty-token"),
        pytest.param(["Bearer"], id="bearer-alone"),
        pytest.param(["Bearer      "], id="bearer-spaces"),
        pytest.param([f"Bearer {WRONG_SAME_LENGTH}"], id="wrong-same-length"),
        pytest.param([f"Bearer {SECRET[:-1]}"], id="prefix-minus-one"),
        pytest.param([f"Bearer {SECRET[:8]}"], id="short-prefix"),
        pytest.param([f"Bearer {SECRET}x"], id="secret-plus-one-char"),
        pytest.param([f"Bearer {SECRET.upper()}"], id="secret-case-changed"),
        pytest.param([f"Bearer {SECRET},{ROTATED}"], id="both-secrets-joined"),
        pytest.param([f"Bearer {SECRET} {SECRET}"], id="secret-twice"),
        pytest.param([f"Bearer {SECRET}", f"Bearer {SECRET}"], id="two-headers-both-right"),
        pytest.param([f"Bearer {SECRET}", f"Bearer {ROTATED}"], id="two-headers-both-secrets"),
        pytest.param([f"Bearer {WRONG_SAME_LENGTH}", f"Bearer {SECRET}"], id="two-headers-wrong-first"),
        pytest.param([f"Bearer {SECRET}", ""], id="two-headers-second-empty"),
    ],
)
def test_refused(auth: BearerAuth, headers: list[str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        auth.check(headers)
    assert caught.value.reason == "unauthorized"
    details = caught.value.details
    assert details
    assert SECRET not in details
    assert ROTATED not in details
    assert SECRET[:8] not in details
    for header in headers:
        token = header.strip().partition(" ")[2].strip()
        if token:
            assert token not in details
            assert token not in str(caught.value)


@pytest.mark.parametrize("token", ["attacker-token-4711", WRONG_SAME_LENGTH, f"{SECRET}x", SECRET[:-1]])
def test_details_never_echo_the_presented_token(auth: BearerAuth, token: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        auth.check([f"Bearer {token}"])
    assert token not in caught.value.details
    assert token not in repr(caught.value)
    assert SECRET not in repr(caught.value)


@pytest.mark.parametrize("secrets", [(), [], iter(()), set()], ids=["tuple", "list", "iterator", "set"])
def test_no_secrets_is_a_value_error(secrets: Iterable[str]) -> None:
    with pytest.raises(ValueError, match="secret"):
        BearerAuth(secrets)


def test_secrets_iterable_is_read_once() -> None:
    auth = BearerAuth(s for s in (SECRET, ROTATED))
    auth.check([f"Bearer {SECRET}"])
    auth.check([f"Bearer {ROTATED}"])
