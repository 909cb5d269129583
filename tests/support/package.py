"""What the wheel is built from, and where it carries each part: shared by the wheel's test and the
Dockerfile's, so that the test builds what the image builds."""

from __future__ import annotations

__all__ = ["IN_WHEEL", "SOURCES"]

SOURCES = ("pyproject.toml", "README.md", "alembic", "projections", "service", "docs/verify_export.py")
"""The build's inputs, and all that the image's build context (.dockerignore) holds."""

IN_WHEEL = {"service": "service", "projections": "projections", "alembic": "service/_migrations"}
"""Source directory -> its path inside the wheel (pyproject.toml's package-dir)."""
