"""Running alembic from the service: `migrate`, and the head revision that /ready compares against."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command

__all__ = ["head_revision", "upgrade"]

_SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "alembic"


def _config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str) -> None:
    """alembic upgrade head (synchronous: it blocks until the schema is at head)."""
    command.upgrade(_config(database_url), "head")


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head
