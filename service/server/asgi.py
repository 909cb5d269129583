"""The web app as an import path, for ASGI servers that start their own worker processes.

    DATABASE_URL=... MIGHTYCALL_WEBHOOK_SECRET=... granian --interface asgi service.server.asgi:app

`serve` is the supported way to run the service (uvicorn, one worker: the fastest here, measured in
bench/servers.py). This module exists for those measurements and for deployments that must use
another server; it needs DATABASE_URL (each worker would otherwise start an embedded PostgreSQL) and
runs no projector: start `mightycall-ingest project` beside it.
"""

from __future__ import annotations

import dataclasses
import gc

from service.app import create_app
from service.core.config import ConfigError, Settings
from service.core.logs import configure_logging

__all__ = ["app"]

_settings = Settings.from_env()
if not _settings.database_url:
    raise ConfigError("service.server.asgi needs DATABASE_URL: it does not start an embedded PostgreSQL")
configure_logging()
app = create_app(dataclasses.replace(_settings, run_projector=False), _settings.database_url)
gc.freeze()  # as serve does (service/server/serve.py)
