"""The audit page's sign-in: a stateless signed cookie, so that any `serve` process accepts what another
one issued, and nothing needs storing.

The cookie is `EXPIRY.NONCE.HEX`, HEX = HMAC-SHA256(key=sha256(token), msg="audit-ui|EXPIRY|NONCE")
(cookies issued before the nonce, `EXPIRY.HEX` over "audit-ui|EXPIRY", stay valid until they expire). It
never holds the token: it proves that whoever signed in knew one, until EXPIRY (unix seconds). The
nonce makes each sign-in's cookie its own, so that signing out ends that one (service/audit/ui/signouts.py,
checked by every process) and not the next sign-in in the same second. Taking a token out of
MIGHTYCALL_AUDIT_TOKENS ends every session it opened.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

__all__ = ["COOKIE", "MAX_AGE_S", "Session", "Sessions", "expiry_of"]

COOKIE = "mightycall_audit_ui"
MAX_AGE_S = 8 * 3600
# Processes whose clocks differ a little must still accept each other's fresh cookies.
_CLOCK_SKEW_S = 60
_VALUE = re.compile(r"([0-9]{1,12})(?:\.([0-9a-f]{16}))?\.([0-9a-f]{64})")
_NO_MATCH = object()


@dataclass(frozen=True, slots=True)
class Session:
    scope: UUID | None
    """The one organization the token may see; None: every organization."""


def _sign(key: bytes, expiry: int, nonce: str | None) -> str:
    message = f"audit-ui|{expiry}" if nonce is None else f"audit-ui|{expiry}|{nonce}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def expiry_of(cookie: str) -> int:
    """The expiry of a cookie value that `Sessions.check` accepted."""
    return int(cookie.split(".", 1)[0])


class Sessions:
    def __init__(
        self, tokens: Iterable[tuple[str, UUID | None]], clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = tuple((hashlib.sha256(token.encode()).digest(), scope) for token, scope in tokens)
        if not self._keys:
            raise ValueError("at least one audit token is required")
        self._clock = clock

    def sign_in(self, presented: str) -> str | None:
        """The cookie value for a configured token; None for anything else."""
        digest = hashlib.sha256(presented.encode()).digest()
        # Every key is compared, matched or not (as service/web/auth.py does): the time taken does not say
        # which one matched, and fixed-length digests do not reveal a token's length.
        found: object = _NO_MATCH
        for key, scope in self._keys:
            if hmac.compare_digest(digest, key):
                found = key, scope
        if found is _NO_MATCH or not presented:
            return None
        assert isinstance(found, tuple)
        key = found[0]
        expiry = int(self._clock()) + MAX_AGE_S
        nonce = secrets.token_hex(8)
        return f"{expiry}.{nonce}.{_sign(key, expiry, nonce)}"

    def check(self, cookie: str | None) -> Session | None:
        """The session a cookie value proves, or None: absent, malformed, expired, tampered with, or
        signed with a token that is no longer configured."""
        match = _VALUE.fullmatch(cookie or "")
        if match is None:
            return None
        expiry, nonce, signature = int(match[1]), match[2], match[3]
        now = self._clock()
        if not now < expiry <= now + MAX_AGE_S + _CLOCK_SKEW_S:
            return None
        found: object = _NO_MATCH
        for key, scope in self._keys:
            if hmac.compare_digest(_sign(key, expiry, nonce), signature):
                found = scope
        if found is _NO_MATCH:
            return None
        assert found is None or isinstance(found, UUID)
        return Session(found)
