"""Running the real `mightycall-ingest` command against a test database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

__all__ = ["ROOT", "run_cli"]

ROOT = Path(__file__).resolve().parent.parent.parent


async def run_cli(db_url: str, *args: str, timeout_s: float = 60) -> tuple[int, bytes, str]:
    """(exit status, stdout bytes, stderr text) of `mightycall-ingest ARGS` with DATABASE_URL=db_url."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out, err.decode()
