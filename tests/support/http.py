"""Credentials the test app is configured with, and the audit API's paths."""

from __future__ import annotations

__all__ = ["AUDIT_PATHS", "SECOND_SECRET", "SECRET", "bearer"]

SECRET = "test-secret-0123456789abcdef"
SECOND_SECRET = "rotated-secret-fedcba9876543210"

AUDIT_PATHS = [
    "/audit/events",
    "/audit/events/1",
    "/audit/events/1/raw",
    "/audit/export",
    "/audit/rejected",
    "/audit/verify",
    "/audit/checkpoint",
    "/audit/trace?table=calls&key=call_1",
]
"""A GET of each of the audit API's endpoints."""


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
