"""Naming databases inside a server URL, for the per-test copies of the migrated template."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["with_database"]


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name` (host, credentials and options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
