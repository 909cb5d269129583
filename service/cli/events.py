"""`events list | show | raw | export | verify | checkpoint`: the auditor's view from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from service.audit.queries import (
    MAX_LIMIT,
    EventFilter,
    event_json,
    get_event,
    list_events,
)
from service.cli.export import export_command
from service.database.pool import connect
from service.eventlog.offline_verify import ExportFailure, verify_export_file
from service.eventlog.verify import Checkpoint, record_verification, take_checkpoint, verify_log

__all__ = ["CommandFailed", "add_event_commands", "run_event_command", "verify_export_command"]

_encode = msgspec.json.Encoder().encode


class CommandFailed(Exception):
    """The command ran and its answer is "no" (a failed verification): exit non-zero with this line."""


def add_event_commands(commands: Any) -> None:
    events = commands.add_parser("events", help="the auditor's view of the log").add_subparsers(
        dest="action", required=True
    )
    for name, help_text in (
        ("list", "events, filtered, a page at a time"),
        ("export", "matching events as NDJSON"),
    ):
        command = events.add_parser(name, help=help_text)
        command.add_argument("--kind")
        command.add_argument("--event-type")
        command.add_argument("--org", dest="org_id")
        command.add_argument("--external-id")
        command.add_argument("--request-id", help="the id in the delivery's log line and X-Request-Id")
        command.add_argument("--since", help="received at or after (RFC 3339)")
        command.add_argument("--until", help="received before (RFC 3339)")
        if name == "list":
            command.add_argument("--after", type=int, default=0, help="position to continue after")
            command.add_argument("--limit", type=int, default=100)
        else:
            command.add_argument("--after", type=int, default=0, help="resume after this position")
            command.add_argument("--limit", type=int, help="at most this many events")
    for name, help_text in (("show", "one event as JSON"), ("raw", "one event's exact bytes, to stdout")):
        events.add_parser(name, help=help_text).add_argument("id", type=int)
    verify = events.add_parser("verify", help="recompute the hashes and the chain; check checkpoints")
    verify.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a file from `checkpoint`"
    )
    verify.add_argument(
        "--export", type=Path, dest="export_file", help="verify this NDJSON export offline, with no database"
    )
    events.add_parser("checkpoint", help="record and print the head: keep it outside the database")


def _filter(args: argparse.Namespace) -> EventFilter:
    names = ("kind", "event_type", "org_id", "external_id", "request_id", "since", "until")
    return EventFilter.parse({name: value for name in names if (value := getattr(args, name))}, None)


def verify_export_command(args: argparse.Namespace) -> str:
    """`events verify --export FILE`: no database is started or reached."""
    try:
        result = verify_export_file(args.export_file, _checkpoints(args.checkpoint))
    except ExportFailure as failure:
        raise CommandFailed(f"verification failed at {failure}") from None
    except OSError as exc:
        raise CommandFailed(f"{args.export_file}: {exc.strerror or type(exc).__name__}") from None
    return _encode(result.as_json()).decode()


def _checkpoints(paths: list[Path]) -> list[Checkpoint]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = msgspec.json.decode(line)
                found.append(Checkpoint(int(data["position"]), bytes.fromhex(data["head_hash"])))
            except (msgspec.DecodeError, KeyError, TypeError, ValueError):
                raise CommandFailed(
                    f"{path}:{number}: not a checkpoint (JSON with position and head_hash)"
                ) from None
    return found


async def run_event_command(args: argparse.Namespace, url: str) -> str | None:
    async with connect(url) as conn:
        if args.action == "list":
            page = await list_events(
                conn, _filter(args), after=args.after, limit=max(1, min(args.limit, MAX_LIMIT))
            )
            header = ("id", "received_at", "kind", "event_type", "org_id", "external_id")
            lines = ["{:>8}  {:<32}  {:<10}  {:<22}  {:<36}  {}".format(*header)]
            lines += [
                f"{e['id']:>8}  {e['received_at'].isoformat():<32}  {e['kind']:<10}  {e['event_type']:<22}  "
                f"{e['org_id']!s:<36}  {e['external_id']}"
                for e in page.items
            ]
            if page.next_after is not None:
                lines.append(f"more: --after {page.next_after}")
            return "\n".join(lines)
        if args.action in ("show", "raw"):
            row = await get_event(conn, args.id, None)
            if row is None:
                raise CommandFailed(f"no event {args.id}")
            if args.action == "raw":
                sys.stdout.buffer.write(bytes(row["body"]))
                return None
            return _encode(event_json(row)).decode()
        if args.action == "export":
            await export_command(conn, _filter(args), after=args.after, limit=args.limit)
            return None
        if args.action == "checkpoint":
            return _encode((await take_checkpoint(conn)).as_json()).decode()
        result = await verify_log(conn, _checkpoints(args.checkpoint))
        await record_verification(conn, result, by="cli")
        if not result.ok:
            raise CommandFailed(f"verification failed at event {result.failure_id}: {result.failure_reason}")
        return _encode(result.as_json()).decode()
