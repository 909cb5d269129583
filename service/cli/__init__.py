"""The `mightycall-ingest` command. Exit status 0 on success; otherwise one line on stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from uuid import UUID

import asyncpg
import uvloop

from projections.rebuild.blockers import RebuildRefused
from projections.rebuild.lock import RebuildRunning
from projections.registry import PROJECTIONS
from service.cli import projections as projection_commands
from service.cli.events import CommandFailed, add_event_commands, run_event_command, verify_export_command
from service.cli.rejected import RedriveRefused, add_rejected_commands, run_rejected_command
from service.core.config import ConfigError, Settings
from service.core.errors import IngestError
from service.database import migrations
from service.database.embedded import start_embedded
from service.database.grants import grant_service_role
from service.database.pool import connect, is_unavailable
from service.ingest import reference
from service.ingest.phone_csv import CsvError, read_phone_numbers

__all__ = ["database_url", "main"]


def database_url(settings: Settings) -> str:
    return settings.database_url or start_embedded(settings.var_dir)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other failure of this command (argparse would add the usage text).
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mightycall-ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="upgrade the database schema to head")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    orgs = commands.add_parser("orgs", help="organizations").add_subparsers(dest="action", required=True)
    org_add = orgs.add_parser("add", help="add an organization; prints its id")
    org_add.add_argument("--name", required=True)
    org_add.add_argument("--id", type=UUID, dest="org_id")

    integrations = commands.add_parser("integrations", help="integrations").add_subparsers(
        dest="action", required=True
    )
    integration_add = integrations.add_parser("add", help="add an integration; prints its id")
    integration_add.add_argument("--org", type=UUID, required=True)
    integration_add.add_argument("--id", type=UUID, dest="integration_id")

    phones = commands.add_parser("phone-numbers", help="phone numbers").add_subparsers(
        dest="action", required=True
    )
    phone_import = phones.add_parser("import", help="import a CSV with a phone_number column")
    phone_import.add_argument("file", type=Path)
    phone_import.add_argument("--org", type=UUID, required=True)

    projections = commands.add_parser("projections", help="the projected tables").add_subparsers(
        dest="action", required=True
    )
    projections.add_parser("status", help="each projection: version, position, lag, whether a rebuild is due")
    commands.add_parser("project", help="run the live projector alone (serve runs one too)")
    rebuild = commands.add_parser("rebuild", help="rebuild projections from the log while the service runs")
    rebuild.add_argument("names", nargs="*", metavar="NAME", help=", ".join(PROJECTIONS))
    rebuild.add_argument("--all", action="store_true", dest="everything", help="every projection")
    add_event_commands(commands)
    add_rejected_commands(commands)
    return parser


async def _reference_command(args: argparse.Namespace, url: str, numbers: list[str], region: str) -> str:
    async with connect(url) as conn:
        if args.command == "orgs":
            return str(await reference.add_organization(conn, args.name, args.org_id))
        if args.command == "integrations":
            return str(await reference.add_integration(conn, args.org, args.integration_id))
        added = await reference.import_phone_numbers(conn, args.org, numbers, region=region)
        return f"{added} added, {len(numbers) - added} already present"


async def _grant(url: str, role: str) -> None:
    async with connect(url) as conn:
        await grant_service_role(conn, role)


def _run(args: argparse.Namespace) -> str | None:
    if args.command == "events" and args.action == "verify" and args.export_file is not None:
        return verify_export_command(args)  # offline: before any setting is read or database started
    settings = Settings.from_env()
    if args.command == "serve":
        # Refused before any database is started (create_app refuses it too).
        if not settings.webhook_secrets:
            raise ConfigError("MIGHTYCALL_WEBHOOK_SECRET is not set; there is no default secret")
        from service.server.serve import serve  # imported here: the other commands need no web stack

        serve(settings, database_url(settings), host=args.host, port=args.port)
        return None
    if args.command == "events":
        return asyncio.run(run_event_command(args, database_url(settings)))
    if args.command == "rejected":
        return asyncio.run(run_rejected_command(args, database_url(settings), settings))
    if args.command == "projections":
        return asyncio.run(projection_commands.status_table(database_url(settings)))
    if args.command == "project":
        # uvloop, as under uvicorn: the projector is mostly round trips, and its transport costs less.
        uvloop.run(projection_commands.project(database_url(settings), settings))
        return None
    if args.command == "rebuild":
        url = database_url(settings)
        return asyncio.run(
            projection_commands.rebuild_projections(url, settings, args.names, args.everything)
        )
    if args.command == "migrate":
        url = database_url(settings)
        migrations.upgrade(url)
        if settings.service_role:
            asyncio.run(_grant(url, settings.service_role))
        return None
    # A bad file is reported before any database is started.
    numbers = read_phone_numbers(args.file) if args.command == "phone-numbers" else []
    return asyncio.run(_reference_command(args, database_url(settings), numbers, settings.default_region))


def _one_line(exc: Exception) -> str:
    if is_unavailable(exc):
        return f"the database is not reachable ({type(exc).__name__})"
    if isinstance(exc, asyncpg.UndefinedTableError):
        return "the database has no schema yet: run `mightycall-ingest migrate`"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        output = _run(args)
    except (
        ConfigError,
        CsvError,
        reference.ReferenceDataError,
        CommandFailed,
        IngestError,
        RedriveRefused,
        RebuildRunning,
        RebuildRefused,
    ) as exc:
        print(f"mightycall-ingest: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"mightycall-ingest: {_one_line(exc)}", file=sys.stderr)
        return 1
    if output is not None:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
