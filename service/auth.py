"""Bearer secrets for the webhooks, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from service.errors import Unauthorized

__all__ = ["BearerAuth"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class BearerAuth:
    """Accepts `Authorization: Bearer <token>` for any one of several secrets (rotation)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Comparing fixed-length digests keeps compare_digest from revealing a secret's length.
        self._digests = tuple(_digest(secret) for secret in secrets)
        if not self._digests:
            raise ValueError("at least one secret is required")

    def check(self, headers: list[str]) -> None:
        """`headers`: every Authorization header of the request. Raises Unauthorized."""
        if not headers:
            raise Unauthorized("missing Authorization: Bearer header")
        if len(headers) > 1:
            raise Unauthorized("more than one Authorization header")
        scheme, _, token = headers[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be: Bearer <secret>")
        presented = _digest(token.strip())
        # Every secret is compared, matched or not, so the time taken does not say which one matched.
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            raise Unauthorized("invalid credentials")
