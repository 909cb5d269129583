"""Running the real `mightycall-ingest` command against a test database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import IO

__all__ = ["ROOT", "run_cli", "start_cli"]

ROOT = Path(__file__).resolve().parent.parent.parent


async def start_cli(
    *args: str,
    env: dict[str, str],
    stdout: int | IO[bytes] = asyncio.subprocess.PIPE,
    stderr: int | IO[bytes] = asyncio.subprocess.PIPE,
    new_session: bool = False,
) -> asyncio.subprocess.Process:
    """`mightycall-ingest ARGS` started with `env` added to this process's environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=stdout,
        stderr=stderr,
        start_new_session=new_session,
    )


async def run_cli(db_url: str, *args: str, timeout_s: float = 60) -> tuple[int, bytes, str]:
    """(exit status, stdout bytes, stderr text) of `mightycall-ingest ARGS` with DATABASE_URL=db_url."""
    process = await start_cli(*args, env={"DATABASE_URL": db_url})
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out, err.decode()
