"""Serving the app with uvicorn."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.config import Settings
from service.logs import configure_logging

__all__ = ["serve"]


def serve(settings: Settings, database_url: str, *, host: str, port: int) -> None:
    app = create_app(settings, database_url)  # refuses to build without a webhook secret
    configure_logging()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging, configured above
        access_log=False,  # one line per delivery comes from the service itself, without secrets
        lifespan="on",
        timeout_graceful_shutdown=15,
        limit_concurrency=2048,
        server_header=False,
    )
