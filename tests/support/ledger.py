"""The client's side of a delivery: what it sent, byte for byte, and what it was told; checked against the
log afterwards. And the real `serve` command as a process a test may kill.

Every delivery made here is distinct (its own external id), so each must end up in `event_log` at most
once, and exactly once if it was ever acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from tests.support.cli import start_cli
from tests.support.http import SECOND_SECRET, SECRET, bearer
from tests.support.payloads import PATHS, body_for

__all__ = [
    "Entry",
    "Ledger",
    "alive",
    "free_port",
    "ledger_mismatches",
    "other_backends",
    "start_serve",
    "wait_until_healthy",
]

KINDS = ("calls", "sms", "recordings", "reports")
_BASE = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)

Answer = int | str
"""An HTTP status, or the name of the transport error that took its place."""


@dataclass(eq=False)
class Entry:
    """One delivery: the same kind and bytes on every attempt."""

    n: int
    kind: str
    body: bytes
    answers: list[Answer] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)
    """(status, event_id) of each 2xx."""
    in_flight: bool = False
    acked_at: float | None = None
    """Loop time of the first 2xx."""
    malformed: list[str] = field(default_factory=list)
    """Answers whose shape is wrong (an error body without error/details, a 503 without Retry-After)."""

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.body).digest()


def _webhook(org_id: uuid.UUID, n: int) -> tuple[str, bytes]:
    """Delivery `n`: the seed payload of one of the four kinds with an id of its own. Calls and
    recordings of the same number share a call and a recording URL, so both land on one row."""
    kind, group = KINDS[n % len(KINDS)], n // len(KINDS)
    stamp = (_BASE + dt.timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    url = f"https://mightycall.com/recordings/rec-{group}.mp3"
    by_kind: dict[str, dict[str, object]] = {
        "calls": {"call_id": f"call-{group}", "recording_url": url, "duration": group % 900},
        "sms": {"sms_id": f"sms-{group}", "message": f"message {group}"},
        "recordings": {"recording_id": f"rec-{group}", "call_id": f"call-{group}", "url": url},
        "reports": {"report_id": f"rep-{group}", "date": stamp[:10]},
    }
    return kind, body_for(kind, org_id, timestamp=stamp, **by_kind[kind])


class Ledger:
    def __init__(self, org_id: uuid.UUID) -> None:
        self._org_id = org_id
        self.entries: list[Entry] = []

    def new(self) -> Entry:
        kind, body = _webhook(self._org_id, len(self.entries))
        entry = Entry(len(self.entries), kind, body)
        self.entries.append(entry)
        return entry

    async def deliver(self, client: httpx.AsyncClient, entry: Entry) -> Answer:
        """One attempt at `entry`; returns the status, or the transport error's name."""
        entry.in_flight = True
        try:
            response = await client.post(PATHS[entry.kind], content=entry.body, headers=bearer())
        except httpx.TransportError as exc:
            entry.answers.append(type(exc).__name__)
            return type(exc).__name__
        finally:
            entry.in_flight = False
        status = response.status_code
        entry.answers.append(status)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if 200 <= status < 300 and isinstance(body.get("event_id"), int):
            entry.acks.append((status, body["event_id"]))
            if entry.acked_at is None:
                entry.acked_at = asyncio.get_running_loop().time()
        elif (
            status < 300
            or set(body) != {"error", "details"}
            or (status == 503 and not response.headers.get("retry-after"))
        ):
            entry.malformed.append(f"{status} {response.headers} {body}")
        return status

    def in_flight(self) -> int:
        return sum(entry.in_flight for entry in self.entries)

    def acknowledged(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.acks]

    def answers(self) -> dict[Answer, int]:
        counts: dict[Answer, int] = defaultdict(int)
        for entry in self.entries:
            for answer in entry.answers:
                counts[answer] += 1
        return dict(counts)


async def ledger_mismatches(conn: asyncpg.Connection, entries: list[Entry]) -> list[str]:
    """Every way the log disagrees with what the client sent and was told: an acknowledged delivery
    missing, any delivery logged twice or with other bytes, an event id that is not the delivery's row,
    a row that no delivery sent."""
    logged: dict[tuple[str, bytes], list[asyncpg.Record]] = defaultdict(list)
    for row in await conn.fetch("SELECT id, kind, body, body_sha256 FROM event_log ORDER BY id"):
        logged[(row["kind"], bytes(row["body_sha256"]))].append(row)
    problems = []
    for entry in entries:
        rows = logged.pop((entry.kind, entry.sha256), [])
        if len(rows) > 1:
            problems.append(f"delivery {entry.n} is logged {len(rows)} times: {[r['id'] for r in rows]}")
        if entry.acks and not rows:
            problems.append(f"delivery {entry.n} was acknowledged {entry.acks} but is not in the log")
        for row in rows:
            if bytes(row["body"]) != entry.body or hashlib.sha256(row["body"]).digest() != entry.sha256:
                problems.append(f"delivery {entry.n} is logged as event {row['id']} with other bytes")
            for status, event_id in entry.acks:
                if event_id != row["id"]:
                    problems.append(f"delivery {entry.n} was told {status} {event_id}, it is {row['id']}")
    for rows in logged.values():
        problems.extend(f"event {row['id']} was sent by no delivery" for row in rows)
    return problems


def alive(process: psutil.Process) -> bool:
    """Still running: neither gone nor a zombie waiting to be reaped."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_serve(db_url: str, port: int, log: Path) -> asyncio.subprocess.Process:
    """`mightycall-ingest serve` in a session of its own (its pid is its process group), logging to
    `log`: a pipe nobody reads would block it under load."""
    env = {"DATABASE_URL": db_url, "MIGHTYCALL_WEBHOOK_SECRET": f"{SECRET},{SECOND_SECRET}"}
    with log.open("ab") as stderr:
        return await start_cli(
            "serve",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            new_session=True,
        )


async def wait_until_healthy(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if process.returncode is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not become healthy")


async def other_backends(conn: asyncpg.Connection, *, within_s: float = 10) -> int:
    """Connections to this database other than `conn`, once they are gone (or `within_s` has passed)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for _ in range(int(within_s * 20)):
        if await conn.fetchval(query) == 0:
            return 0
        await asyncio.sleep(0.05)
    count: int = await conn.fetchval(query)
    return count
