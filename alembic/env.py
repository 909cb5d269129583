"""Runs the migrations. They are plain SQL (`op.execute`): the schema is PostgreSQL's own (triggers,
bytea, grants), and there are no ORM models to autogenerate from.

psycopg, not the service's asyncpg, carries them: asyncpg prepares every statement, and a prepared
statement cannot hold the several commands a migration step is written as.
"""

import os

import psycopg
from sqlalchemy import create_engine, pool

from alembic import context
from service.database.migrations import refuse_foreign_tables
from service.database.primary import target_session_attrs

# Two `migrate` runs at once (several service hosts starting together) would otherwise both see the
# old version and both try to apply the same step.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mightycall-ingest migrate'))"


def _connect(url: str) -> psycopg.Connection:
    """libpq reads the URL itself, as psql would: SQLAlchemy's URL parser does not take several hosts
    (`postgresql://h1:5432,h2:5432/db`), and a migration must run on the primary, like the service's
    own sessions (service/database/primary.py)."""
    if url.partition("://")[0] not in ("postgres", "postgresql"):
        raise SystemExit("DATABASE_URL must start with postgresql://")
    attrs = target_session_attrs(url)
    return psycopg.connect(url, **({"target_session_attrs": attrs} if attrs else {}))


def _run_online(url: str) -> None:
    engine = create_engine("postgresql+psycopg://", creator=lambda: _connect(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=None)
            with context.begin_transaction():
                connection.exec_driver_sql(_MIGRATION_LOCK)
                refuse_foreign_tables(connection)
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `mightycall-ingest migrate`")

_url = context.config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
if not _url:
    raise SystemExit("no database: set DATABASE_URL or run `mightycall-ingest migrate`")
_run_online(_url)
