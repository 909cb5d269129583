"""Running alembic from the service: `migrate`, and the head revision that /ready compares against."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from service.core.config import ConfigError

# alembic and SQLAlchemy are imported where they are used: every command line imports this module,
# and the two of them are half the memory `rebuild`'s process holds before it starts.
if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

__all__ = ["OWN_TABLES", "head_revision", "known_revisions", "refuse_foreign_tables", "upgrade"]

OWN_TABLES = (
    "organizations",
    "integrations",
    "phone_numbers",
    "event_log",
    "event_log_head",
    "rejected_deliveries",
    "projection_checkpoints",
    "calls",
    "mightycall_sms_messages",
    "mightycall_recordings",
    "mightycall_reports",
    "audit_checkpoints",
    "rebuild_progress",
    "audit_verifications",
    "audit_ui_signouts",
    "rejection_admissions",
    "projection_retries",
)
"""Every table the migrations create (tests/integration/test_migrations.py keeps this list true)."""


def _script_location() -> Path:
    # An installed wheel carries the migrations inside the package (pyproject.toml maps alembic/ there);
    # a checkout, and an editable install of it, keeps them at the top level beside service/.
    service = Path(__file__).resolve().parents[1]
    packaged = service / "_migrations"
    return packaged if (packaged / "env.py").is_file() else service.parent / "alembic"


_SCRIPT_LOCATION = _script_location()


def _config(database_url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """alembic upgrade head (synchronous: it blocks until the schema is at head)."""
    from alembic import command

    command.upgrade(_config(database_url), "head")


@cache
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@cache
def known_revisions() -> frozenset[str]:
    """Every revision this code's migrations hold: a schema at one of them is at head or behind it."""
    from alembic.script import ScriptDirectory

    return frozenset(script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions())


def refuse_foreign_tables(connection: Connection) -> None:
    """Before the first migration: stop, naming them, if tables of ours already exist under our names.

    The functions this service replaces wrote tables named as its projections and reference data.
    Without this, the first CREATE TABLE fails with "relation ... already exists" and no hint of why.
    """
    if connection.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar() is not None:
        return
    found = [
        name
        for name in OWN_TABLES
        if connection.exec_driver_sql("SELECT to_regclass(%(name)s)", {"name": name}).scalar() is not None
    ]
    if found:
        raise ConfigError(
            f"this database already has tables that migrate would create: {', '.join(found)}."
            " If they are the old Supabase functions' tables, move them aside first:"
            " see docs/migrating-from-supabase.md. Nothing was changed"
        )
