"""`rejected list | admit`: the refused deliveries, and bringing them in once their cause is fixed."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from typing import Any

import asyncpg

from service.core.config import Settings
from service.core.logs import configure_logging
from service.core.payloads import KINDS
from service.database.pool import connect, create_pool
from service.ingest.organizations import OrgResolver
from service.ingest.redrive import OUTCOMES, Admission, RejectedFilter, admit, admit_matching, list_rejected

__all__ = ["RedriveRefused", "add_rejected_commands", "run_rejected_command"]

_MAX_LIMIT = 1000

_SUMMARY = {
    "admitted": "admitted",
    "duplicate": "already in the log",
    "refused": "still refused",
    "no_body": "no body",
}


class RedriveRefused(Exception):
    """The command was asked for something it cannot do (an unknown id): exit non-zero with this line."""


def _timestamp(raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {raw!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z or +00:00): {raw!r}")
    return moment


def add_rejected_commands(commands: Any) -> None:
    rejected = commands.add_parser(
        "rejected", help="authenticated deliveries that were refused, and admitting them"
    ).add_subparsers(dest="action", required=True)
    listing = rejected.add_parser("list", help="refused deliveries, newest first")
    admitting = rejected.add_parser("admit", help="check stored refused bodies again; append what now passes")
    admitting.add_argument("ids", nargs="*", type=int, metavar="ID")
    admitting.add_argument("--all", action="store_true", dest="everything", help="every refusal that matches")
    for command in (listing, admitting):
        command.add_argument("--kind", choices=KINDS)
        command.add_argument("--since", type=_timestamp, help="received at or after (RFC 3339)")
        command.add_argument("--reason", help="the refusal's reason, e.g. unknown_organization")
    listing.add_argument("--before", type=int, help="only refusals with a smaller id (the next page)")
    listing.add_argument("--limit", type=int, default=100)


def _filter(args: argparse.Namespace) -> RejectedFilter:
    return RejectedFilter(kind=args.kind, since=args.since, reason=args.reason)


async def run_rejected_command(args: argparse.Namespace, url: str, settings: Settings) -> str:
    if args.action == "list":
        async with connect(url) as conn:
            limit = max(1, min(args.limit, _MAX_LIMIT))
            return _table(await list_rejected(conn, _filter(args), before=args.before, limit=limit), limit)
    if bool(args.ids) == args.everything:
        raise RedriveRefused(
            "rejected admit: give the ids to admit, or --all (with --kind, --since, --reason)"
        )
    if args.ids and (args.kind or args.since or args.reason):
        raise RedriveRefused("rejected admit: --kind, --since and --reason go with --all, not with ids")
    configure_logging()
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        resolver = OrgResolver(pool)
        limit = settings.max_body_bytes
        if args.ids:
            try:
                admissions = await admit(pool, args.ids, resolver=resolver, max_body_bytes=limit)
            except LookupError as exc:
                raise RedriveRefused(str(exc)) from None
        else:
            admissions = [
                a async for a in admit_matching(pool, _filter(args), resolver=resolver, max_body_bytes=limit)
            ]
    finally:
        await pool.close()
    return _report(admissions)


def _table(rows: list[asyncpg.Record], limit: int) -> str:
    header = ("id", "received_at", "kind", "reason", "body", "in the log", "details")
    lines = ["{:>8}  {:<32}  {:<10}  {:<22}  {:<5}  {:<24}  {}".format(*header)]
    for r in rows:
        if r["in_log_as"] is None:
            logged = "no"
        elif r["admitted_from_here"]:
            logged = f"admitted as {r['in_log_as']}"
        else:
            logged = f"as event {r['in_log_as']}"
        lines.append(
            f"{r['id']:>8}  {r['received_at'].isoformat():<32}  {r['kind']:<10}  {r['reason']:<22}  "
            f"{'kept' if r['body_kept'] else 'none':<5}  {logged:<24}  {r['details']}"
        )
    if len(rows) == limit:
        lines.append(f"more: --before {rows[-1]['id']}")
    return "\n".join(lines)


def _report(admissions: list[Admission]) -> str:
    lines = []
    for a in admissions:
        if a.outcome in ("admitted", "duplicate"):
            lines.append(f"{a.rejection_id}: {_SUMMARY[a.outcome]} (event {a.event_id})")
        elif a.outcome == "refused":
            lines.append(f"{a.rejection_id}: still refused: {a.reason}: {a.details}")
        else:
            lines.append(f"{a.rejection_id}: no body: refused before its body was kept (413 or 408)")
    counts = Counter(a.outcome for a in admissions)
    lines.append(", ".join(f"{counts[o]} {_SUMMARY[o]}" for o in OUTCOMES))
    return "\n".join(lines)
