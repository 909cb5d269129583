"""Credentials the test app is configured with."""

from __future__ import annotations

__all__ = ["SECOND_SECRET", "SECRET", "bearer"]

SECRET = "test-secret-0123456789abcdef"
SECOND_SECRET = "rotated-secret-fedcba9876543210"


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
