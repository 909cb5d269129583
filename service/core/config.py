"""Settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import phonenumbers

__all__ = ["ConfigError", "Settings", "parse_audit_tokens", "parse_secrets"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_READY_MAX_LAG_S = 300

# The function set this service replaces documented this literal as the secret to set, and fell back to
# it when none was set. Anyone who read that README knows it, so it is refused like no secret at all.
_PUBLISHED_EXAMPLE_SECRET = "your-secret-key"  # noqa: S105 - refused, never used


class ConfigError(Exception):
    """The environment does not describe a configuration the service can run with."""


def parse_secrets(raw: str | None) -> tuple[str, ...]:
    """Comma-separated secrets; several are active at once while one is being rotated out."""
    secrets = tuple(part.strip() for part in (raw or "").split(",") if part.strip())
    if _PUBLISHED_EXAMPLE_SECRET in secrets:
        raise ConfigError(
            f"MIGHTYCALL_WEBHOOK_SECRET must not be the published example '{_PUBLISHED_EXAMPLE_SECRET}'"
        )
    return secrets


def parse_audit_tokens(raw: str | None) -> tuple[tuple[str, UUID | None], ...]:
    """`TOKEN` sees every organization; `TOKEN@ORG_UUID` sees that one only."""
    tokens: list[tuple[str, UUID | None]] = []
    for part in (raw or "").split(","):
        token, at, org = part.strip().partition("@")
        if not token:
            if at:
                raise ConfigError("MIGHTYCALL_AUDIT_TOKENS: a token is empty before its @ORG_UUID")
            continue
        # `t@A,t` would otherwise let t see every organization (whichever entry matched last won).
        # The entries are named by their place: the message must not hold the token.
        for number, (seen, _) in enumerate(tokens, start=1):
            if seen == token:
                raise ConfigError(
                    f"MIGHTYCALL_AUDIT_TOKENS: entry {len(tokens) + 1} repeats the token of entry {number};"
                    " list each token once (with @ORG_UUID to limit it)"
                )
        try:
            tokens.append((token, UUID(org) if at else None))
        except ValueError:
            raise ConfigError(
                "MIGHTYCALL_AUDIT_TOKENS: what follows @ must be an organization's UUID"
            ) from None
    return tuple(tokens)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _region(raw: str | None) -> str:
    region = (raw or "US").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"MIGHTYCALL_DEFAULT_REGION must be a two-letter region such as US or GB, got {raw!r}"
        )
    return region


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    """None: the embedded PostgreSQL under `var_dir`."""
    webhook_secrets: tuple[str, ...] = ()
    audit_tokens: tuple[tuple[str, UUID | None], ...] = ()
    """(token, the one organization it may see, or None for all). None configured: no audit API."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    service_role: str | None = None
    """A database role that `migrate` grants only what the service needs (SELECT and INSERT on the log)."""
    var_dir: Path = Path("var")
    default_region: str = "US"
    """Region for phone numbers written without a country code."""
    run_projector: bool = True
    """Whether `serve` runs a live projector (only one is active across all processes anyway)."""
    ready_max_lag_s: int = DEFAULT_READY_MAX_LAG_S
    """/ready/projections fails while a projection's oldest unapplied event is older than this."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            webhook_secrets=parse_secrets(env.get("MIGHTYCALL_WEBHOOK_SECRET")),
            audit_tokens=parse_audit_tokens(env.get("MIGHTYCALL_AUDIT_TOKENS")),
            max_body_bytes=_positive_int(env, "MIGHTYCALL_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            service_role=env.get("MIGHTYCALL_SERVICE_ROLE") or None,
            var_dir=Path(env.get("MIGHTYCALL_VAR_DIR") or "var"),
            default_region=_region(env.get("MIGHTYCALL_DEFAULT_REGION")),
            ready_max_lag_s=_positive_int(env, "MIGHTYCALL_READY_MAX_LAG_SECONDS", DEFAULT_READY_MAX_LAG_S),
        )

    def __repr__(self) -> str:
        # Settings end up in tracebacks and debug logs; the secrets must not.
        return (
            f"Settings(database_url={'set' if self.database_url else 'embedded'}, "
            f"webhook_secrets=<{len(self.webhook_secrets)} hidden>, "
            f"audit_tokens=<{len(self.audit_tokens)} hidden>, max_body_bytes={self.max_body_bytes})"
        )
