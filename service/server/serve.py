"""Serving the app with uvicorn."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import signal
from typing import Any

import uvicorn

from service.app import create_app
from service.core.config import Settings
from service.core.logs import configure_logging
from service.server.http_limits import BoundedHeadProtocol
from service.server.projector_process import projector_process
from service.web.front import Front

__all__ = ["UVICORN_OPTIONS", "serve"]

UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,  # our JSON logging, configured by serve
    "access_log": False,  # one line per delivery comes from the service itself, without secrets
    "lifespan": "on",
    "timeout_graceful_shutdown": 15,
    "limit_concurrency": 2048,
    "server_header": False,
    "http": BoundedHeadProtocol,
}
"""How serve runs uvicorn (tests start the same server in-process)."""


def serve(settings: Settings, database_url: str, *, host: str, port: int) -> None:
    # The projector runs beside the web process, not in it (service/server/projector_process.py).
    app = create_app(dataclasses.replace(settings, run_projector=False), database_url)  # needs a secret
    configure_logging()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then restores the handlers it found and raises
    # the signal again. With the defaults that kills the process by signal (or prints a KeyboardInterrupt
    # traceback) after a clean shutdown; these make a clean shutdown exit 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    # The app's own objects live as long as the process: frozen, the collector stops walking them on
    # every full collection, a visible share of the web process's time under load.
    gc.freeze()
    with projector_process(database_url) if settings.run_projector else contextlib.nullcontext():
        _run(app, host, port)


def _run(app: Front, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, **UVICORN_OPTIONS)
