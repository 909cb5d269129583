"""Bearer credentials, compared in constant time: the webhook secrets, and the auditors' tokens."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from uuid import UUID

from service.core.errors import Unauthorized

__all__ = ["BearerAuth"]

_NO_MATCH = object()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerAuth:
    """Accepts `Authorization: Bearer <token>` for any one of several tokens (rotation).

    Each token may carry a scope (an auditor's organization); `check` returns the scope of the token
    presented, None for a token without one.
    """

    def __init__(self, tokens: Iterable[str], scopes: Sequence[UUID | None] | None = None) -> None:
        # Comparing fixed-length digests keeps compare_digest from revealing a token's length.
        digests = tuple(_digest(token) for token in tokens)
        if not digests:
            raise ValueError("at least one secret is required")
        self._entries = tuple(zip(digests, scopes or (None,) * len(digests), strict=True))

    def check(self, headers: list[str]) -> UUID | None:
        """`headers`: every Authorization header of the request. Raises Unauthorized."""
        if not headers:
            raise Unauthorized("missing Authorization: Bearer header")
        if len(headers) > 1:
            raise Unauthorized("more than one Authorization header")
        scheme, _, token = headers[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be: Bearer <secret>")
        presented = _digest(token.strip())
        # Every token is compared, matched or not, so the time taken does not say which one matched.
        scope: object = _NO_MATCH
        for digest, candidate in self._entries:
            if hmac.compare_digest(presented, digest):
                scope = candidate
        if scope is _NO_MATCH:
            raise Unauthorized("invalid credentials")
        assert scope is None or isinstance(scope, UUID)
        return scope
