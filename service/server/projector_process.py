"""The live projector as a child process of `serve`.

In the web process it would share one interpreter (and one core) with every request: measured side
by side under load (bench/, README "Performance"), the same service took about 45 % more webhooks per
second with the projector in its own process. The child is `mightycall-ingest project`; if it dies,
it is started again.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

__all__ = ["projector_process"]

_log = logging.getLogger("mightycall.projector")
_RESTART_DELAY_S = 2.0
_STOP_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1
_NICENESS = 10


def _prepare_child() -> None:
    # Should `serve` be killed outright, the projector goes too instead of living on as an orphan.
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # Acknowledging webhooks comes first: under full load the projector takes the CPU the web process
    # leaves, falls behind, and catches up when the load eases (README "Performance").
    os.nice(_NICENESS)


@contextlib.contextmanager
def projector_process(database_url: str) -> Iterator[None]:
    """Run `mightycall-ingest project` for as long as the block lasts."""
    stopping = threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def supervise() -> None:
        while not stopping.is_set():
            child = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "project"],
                env={**os.environ, "DATABASE_URL": database_url},
                # Its own process group: a Ctrl-C at the terminal reaches `serve`, which stops it in turn.
                start_new_session=True,
                preexec_fn=_prepare_child,  # only prctl and nice: safe between fork and exec
            )
            current[:] = [child]
            status = child.wait()
            if not stopping.is_set():
                _log.error(
                    "the projector process exited; starting it again", extra={"fields": {"status": status}}
                )
                stopping.wait(_RESTART_DELAY_S)

    supervisor = threading.Thread(target=supervise, name="projector-supervisor", daemon=True)
    supervisor.start()
    try:
        yield
    finally:
        stopping.set()
        for child in current:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        supervisor.join(timeout=_STOP_TIMEOUT_S)
