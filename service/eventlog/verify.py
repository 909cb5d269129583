"""Proving the log unaltered: every body against its hash, every link of the chain, no holes, and
every checkpoint an auditor kept still a prefix of the log.

What each check catches: a changed body (its sha256), a changed envelope (its chain hash), a deleted
or inserted row (a hole, or a broken link), reordered rows (broken links), a truncated tail (the head
row, or a checkpoint beyond the end), and a log rewritten with a freshly computed chain (the
checkpoints, whose hashes no longer match). A superuser can rewrite the log and the head together;
only checkpoints kept outside the database catch that, so auditors should keep them.

Each full verification's answer is also recorded (`record_verification`) for the audit page: a record
of what was said, not a proof; only running a verification again proves anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from service.database.pool import is_unavailable
from service.eventlog.chain import GENESIS_HASH, row_hash

__all__ = ["Checkpoint", "Verification", "record_verification", "take_checkpoint", "verify_log"]

_CHUNK = 1000
_MAX_REASON = 1000
"""audit_verifications.failure_reason's CHECK (alembic 0007); the reasons written here are far shorter."""
_log = logging.getLogger("mightycall.verify")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    position: int
    head_hash: bytes
    created_at: dt.datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {"position": self.position, "head_hash": self.head_hash.hex(), "created_at": self.created_at}


@dataclass(frozen=True, slots=True)
class Verification:
    head_id: int
    head_hash: bytes
    failure_id: int | None = None
    failure_reason: str | None = None
    checkpoints_checked: int = 0
    """Checkpoints compared with the log (an auditor's and those recorded), up to the first failure."""

    @property
    def ok(self) -> bool:
        return self.failure_id is None

    def as_json(self) -> dict[str, object]:
        failure = None if self.ok else {"id": self.failure_id, "reason": self.failure_reason}
        return {"ok": self.ok, "head": {"id": self.head_id, "hash": self.head_hash.hex()}, "failure": failure}


async def take_checkpoint(conn: asyncpg.Connection) -> Checkpoint:
    """Record the current head as a checkpoint (kept in the database too, and checked by every verify)."""
    row = await conn.fetchrow(
        """
        INSERT INTO audit_checkpoints (position, head_hash)
        SELECT position, hash FROM event_log_head
        RETURNING position, head_hash, created_at
        """
    )
    assert row is not None
    return Checkpoint(row["position"], bytes(row["head_hash"]), row["created_at"])


async def verify_log(conn: asyncpg.Connection, checkpoints: Iterable[Checkpoint] = ()) -> Verification:
    """Verify the whole log, streaming it; `checkpoints` are those an auditor kept, in addition to the
    ones recorded in the database."""
    wanted: dict[int, list[bytes]] = {}
    recorded = await conn.fetch("SELECT position, head_hash FROM audit_checkpoints")
    for checkpoint in [*checkpoints, *(Checkpoint(r["position"], bytes(r["head_hash"])) for r in recorded)]:
        wanted.setdefault(checkpoint.position, []).append(checkpoint.head_hash)

    expected_id, chain, checked = 1, GENESIS_HASH, len(wanted.get(0, ()))
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        # One snapshot: appends that commit meanwhile are neither half-seen nor mistaken for tampering.
        head = await conn.fetchrow("SELECT position, hash FROM event_log_head")
        assert head is not None
        failure = _checkpoint_failure(wanted, 0, GENESIS_HASH)
        cursor = conn.cursor(
            "SELECT id, received_at, kind, event_type, org_id, external_id, content_type, body, body_sha256,"
            " prev_hash, hash, request_id, admitted_from FROM event_log ORDER BY id",
            prefetch=_CHUNK,
        )
        async for row in cursor:
            if failure is not None:
                break
            failure = _row_failure(row, expected_id, chain)
            chain = bytes(row["hash"])
            if failure is None:
                checked += len(wanted.get(row["id"], ()))
                failure = _checkpoint_failure(wanted, row["id"], chain)
            expected_id += 1
    last_id = expected_id - 1
    if failure is None and (head["position"], bytes(head["hash"])) != (last_id, chain):
        failure = (
            last_id + 1,
            f"the head says {head['position']} events, the log holds {last_id}: truncated",
        )
    if failure is None:
        beyond = [position for position in wanted if position > last_id]
        if beyond:
            checked += sum(len(wanted[position]) for position in beyond)
            failure = (
                last_id + 1,
                f"a checkpoint at {min(beyond)} lies beyond the end of the log: truncated",
            )
    if failure is not None:
        return Verification(head["position"], bytes(head["hash"]), *failure, checkpoints_checked=checked)
    return Verification(last_id, chain, checkpoints_checked=checked)


async def record_verification(
    conn: asyncpg.Connection, result: Verification, *, by: Literal["cli", "api"]
) -> bool:
    """Record `result` for the audit page (alembic 0007); True if it was.

    The verification's answer must not depend on this: on a read-only database (a standby), for a role
    without INSERT on the table, or with the database gone since, it logs a warning and returns False.
    """
    reason = None if result.failure_reason is None else result.failure_reason[:_MAX_REASON]
    try:
        await conn.execute(
            """
            INSERT INTO audit_verifications
                (ok, head_position, head_hash, failure_position, failure_reason, checkpoints_checked, by)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            result.ok,
            result.head_id,
            result.head_hash,
            result.failure_id,
            reason,
            result.checkpoints_checked,
            by,
        )
    except Exception as exc:
        if not (isinstance(exc, asyncpg.PostgresError) or is_unavailable(exc)):
            raise
        # The error's class and SQLSTATE only: its message is the database's, and says nothing more useful.
        _log.warning(
            "could not record the verification's result (%s); its answer stands",
            type(exc).__name__,
            extra={
                "fields": {
                    "by": by,
                    "ok": result.ok,
                    "head_position": result.head_id,
                    "error": type(exc).__name__,
                    "sqlstate": getattr(exc, "sqlstate", None),
                }
            },
        )
        return False
    return True


def _row_failure(row: asyncpg.Record, expected_id: int, previous: bytes) -> tuple[int, str] | None:
    if row["id"] != expected_id:
        return expected_id, f"event {expected_id} is missing (the next one is {row['id']})"
    body_sha256 = bytes(row["body_sha256"])
    if hashlib.sha256(row["body"]).digest() != body_sha256:
        return row["id"], "the body does not match its sha256"
    if bytes(row["prev_hash"]) != previous:
        return row["id"], "the chain is broken: prev_hash is not the previous event's hash"
    recomputed = row_hash(previous, row)
    if bytes(row["hash"]) != recomputed:
        return row["id"], "the envelope does not match its hash"
    return None


def _checkpoint_failure(
    wanted: dict[int, list[bytes]], position: int, chain: bytes
) -> tuple[int, str] | None:
    if any(expected != chain for expected in wanted.get(position, ())):
        return position, f"the checkpoint at {position} does not match: the log was rewritten at or before it"
    return None
