"""The package as an operator installs it: a wheel built from the sources, installed into a virtualenv
of its own outside the checkout, run from another directory. The migrations must travel inside it.

The dependencies are borrowed from the development virtualenv (a path in the new one's site-packages)
rather than downloaded again; the package itself comes only from the wheel, which each test checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.database import migrations
from tests.support.cli import ROOT
from tests.support.databases import with_database
from tests.support.http import SECRET, bearer
from tests.support.ledger import free_port
from tests.support.package import IN_WHEEL, SOURCES
from tests.support.payloads import PATHS, body_for

_BUILD_S = 300
_COMMAND_S = 120


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the sources (a build/ left in the checkout could add stale
    files to it)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=_BUILD_S,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = dist.glob("mightycall_ingest-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` directory of a new virtualenv with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))
    # A plain path, not a site directory: the development install's own .pth (the checkout) stays out.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)]
    )
    return venv / "bin"


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=_COMMAND_S, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
    return done.stdout.strip()


def _source_files(directory: str) -> set[str]:
    root = ROOT / directory
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


AUDIT_TOKEN = "wheel-audit-token-0123456789"


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_packages_and_the_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for directory, target in IN_WHEEL.items():
        missing = {name for name in _source_files(directory) if f"{target}/{name}" not in names}
        assert missing == set(), f"{directory}/ files not in the wheel"
    assert "service/_migrations/env.py" in names and "service/_migrations/script.py.mako" in names
    # The auditors' standalone verifier, which the installed service serves as /audit/verifier.py.
    assert "service/_verifier/verify_export.py" in names


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    """A database with nothing in it: `migrate` from the wheel must build the whole schema."""
    name = f"mightycall_wheel_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield with_database(server_url, name)
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.slow
def test_the_installed_command_migrates_serves_rebuilds_and_verifies_from_any_directory(
    installed, empty_database, tmp_path
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")},
        "DATABASE_URL": empty_database,
        "MIGHTYCALL_WEBHOOK_SECRET": SECRET,
        "MIGHTYCALL_AUDIT_TOKENS": AUDIT_TOKEN,
    }
    cli = str(installed / "mightycall-ingest")

    def run(*args: str) -> str:
        return _run([cli, *args], cwd=elsewhere, env=env)

    # The code that runs is the wheel's, not the checkout's.
    where = _run([str(installed / "python"), "-c", "import service; print(service.__file__)"], cwd=elsewhere)
    assert Path(where).is_relative_to(installed.parent), where

    run("migrate")
    org_id = run("orgs", "add", "--name", "Wheel")

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        serve = subprocess.Popen(
            [cli, "serve", "--port", str(port)], cwd=elsewhere, env=env, stderr=stderr, start_new_session=True
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = _wait_for_ready(client, serve, log)
            statuses = {
                kind: client.post(path, content=body_for(kind, org_id), headers=bearer()).status_code
                for kind, path in PATHS.items()
            }
            verifier = client.get("/audit/verifier.py", headers={"Authorization": f"Bearer {AUDIT_TOKEN}"})
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)

    assert ready == {"ready": True}
    assert statuses == dict.fromkeys(PATHS, 202)
    assert (
        verifier.status_code == 200 and verifier.content == (ROOT / "docs" / "verify_export.py").read_bytes()
    )
    assert serve.returncode == 0, log.read_text()[-3000:]

    run("rebuild", "--all")
    verified = json.loads(run("events", "verify"))
    assert verified["ok"] is True and verified["head"]["id"] == len(PATHS), verified
    status = run("projections", "status")
    assert "stopped" not in status and "rebuild due" not in status, status


def _wait_for_ready(client: httpx.Client, serve: subprocess.Popen[bytes], log: Path) -> object:
    # /ready compares the database's schema with the head of the migrations the wheel carries.
    for _ in range(600):
        assert serve.poll() is None, log.read_text()[-3000:]
        try:
            response = client.get("/ready")
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"serve was not ready: {log.read_text()[-3000:]}")


def test_the_checkout_still_finds_its_own_migrations():
    # Run from the repository (tests, `make run`, the editable install), alembic/ at the top is used.
    assert migrations._SCRIPT_LOCATION == ROOT / "alembic"
