"""Least privilege for the service's database role: it may append to the log, never change it."""

from __future__ import annotations

import re

import asyncpg

from service.core.config import ConfigError

__all__ = ["grant_service_role"]

_ROLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# What `serve` needs and nothing more. Migrations and the operator's commands run as the owner.
_GRANTS = """
    GRANT USAGE ON SCHEMA public TO {role};
    GRANT SELECT, INSERT ON event_log, rejected_deliveries TO {role};
    GRANT SELECT, UPDATE ON event_log_head TO {role};
    GRANT SELECT ON organizations, integrations, phone_numbers, alembic_version TO {role};
    -- /audit/verify checks the log against the recorded checkpoints; recording one is the operator's
    -- (`events checkpoint`, as the owner), so the service cannot vouch for a log it could have written.
    GRANT SELECT ON audit_checkpoints TO {role};
    -- /audit/verify (which the service runs) records what it found; /audit/ui/status shows the last one.
    -- Unlike a checkpoint such a row vouches for nothing: it says what a verification answered, and a
    -- role that can add one can add any. Never changed, though: a failure, once recorded, stays.
    GRANT SELECT, INSERT ON audit_verifications TO {role};
    -- Signing out of /audit/ui lists the session so that every process refuses it (alembic 0008).
    GRANT SELECT, INSERT ON audit_ui_signouts TO {role};
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_verifications FROM {role};
    REVOKE UPDATE, DELETE, TRUNCATE ON event_log FROM {role};
    -- The live projector, which runs inside `serve`. Rebuilds run as the owner: they create tables.
    GRANT SELECT, INSERT, UPDATE ON calls, mightycall_sms_messages, mightycall_recordings,
        mightycall_reports TO {role};
    -- A report's newer version deletes the rows of the metrics it no longer carries.
    GRANT DELETE ON mightycall_reports TO {role};
    GRANT SELECT, UPDATE ON projection_checkpoints TO {role};
    -- The live projector counts its retries of a projection the database held back; /metrics reads them.
    GRANT SELECT, INSERT, UPDATE ON projection_retries TO {role};
    -- /metrics reports a running rebuild's progress, and the admissions of refused deliveries, which
    -- the audit API shows too. Admitting is the operator's (`rejected admit`, as the owner).
    GRANT SELECT ON rebuild_progress, rejection_admissions TO {role};
"""


async def grant_service_role(conn: asyncpg.Connection, role: str) -> None:
    if not _ROLE_NAME.fullmatch(role):
        raise ConfigError("MIGHTYCALL_SERVICE_ROLE must be a plain role name (letters, digits, _)")
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
        raise ConfigError(f"MIGHTYCALL_SERVICE_ROLE: no database role {role!r}; create it first")
    await conn.execute(_GRANTS.format(role=f'"{role}"'))
