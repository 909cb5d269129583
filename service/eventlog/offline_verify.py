"""`events verify --export FILE [--checkpoint FILE]`: an export checked with no database at all.

The same checks as the log's own verification (service/eventlog/verify.py), on the lines of an NDJSON export
(service/audit_queries.export_line): every body against its sha256, every envelope against its hash,
every link, positions without a hole, and every checkpoint the export covers. A partial export (taken
with `after`) must continue from a checkpoint at its start, or nothing vouches for its first link.
docs/verify_export.py is the same algorithm in the standard library only; the tests hold the two to the
same answers.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

from service.eventlog.chain import GENESIS_HASH, row_hash
from service.eventlog.verify import Checkpoint

__all__ = ["ExportFailure", "ExportVerified", "verify_export", "verify_export_file"]


class ExportFailure(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event {position}: {reason}")
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExportVerified:
    first: int
    last: int
    head_hash: bytes | None
    """None: the export held no events."""
    checkpoints_checked: int

    def as_json(self) -> dict[str, object]:
        head = None if self.head_hash is None else {"id": self.last, "hash": self.head_hash.hex()}
        return {
            "ok": True,
            "first": self.first,
            "head": head,
            "checkpoints_checked": self.checkpoints_checked,
        }


class _Line(msgspec.Struct, frozen=True):
    id: int
    received_at: Annotated[dt.datetime, msgspec.Meta(tz=True)]
    kind: str
    event_type: str
    org_id: str
    """Hashed as written, as the standalone verifier does: not normalised through UUID."""
    external_id: str
    content_type: str | None
    body_sha256: str
    request_id: str | None
    prev_hash: str
    hash: str
    body_base64: str
    payload: msgspec.Raw = msgspec.Raw(b"null")
    admitted_from: int | None = None
    """Absent from exports made before admissions existed."""


_decode_line = msgspec.json.Decoder(_Line).decode


def verify_export_file(export: Path, checkpoints: Iterable[Checkpoint] = ()) -> ExportVerified:
    with export.open("rb") as file:
        return verify_export(file, checkpoints)


def verify_export(lines: Iterable[bytes], checkpoints: Iterable[Checkpoint] = ()) -> ExportVerified:
    """Raises ExportFailure naming the first event that fails, and why."""
    wanted: dict[int, set[bytes]] = {}
    for checkpoint in checkpoints:
        wanted.setdefault(checkpoint.position, set()).add(checkpoint.head_hash)
    first, expected, previous, checked = 0, 1, None, 0
    for raw in lines:
        if not raw.strip():
            continue
        line = _parse(raw, expected - 1)
        previous = _check(line, expected, previous, wanted)
        checked += len(wanted.get(line.id, ()))
        first = first or line.id
        expected = line.id + 1
    last = expected - 1
    beyond = [position for position in wanted if position > last]
    if previous is not None and beyond:
        raise ExportFailure(
            last + 1, f"a checkpoint at {min(beyond)} lies beyond the export's end: truncated"
        )
    return ExportVerified(first, last, previous, checked)


def _parse(raw: bytes, after: int) -> _Line:
    try:
        return _decode_line(raw)
    except msgspec.DecodeError:
        raise ExportFailure(
            after + 1, "its line is not a complete export line (cut short, or altered)"
        ) from None


def _check(line: _Line, expected: int, previous: bytes | None, wanted: dict[int, set[bytes]]) -> bytes:
    position = line.id
    if previous is not None and position != expected:
        if position < expected:
            raise ExportFailure(position, f"it appears again, or out of order, after event {expected - 1}")
        raise ExportFailure(expected, f"it is missing (the next line holds event {position})")
    try:
        body = base64.b64decode(line.body_base64, validate=True)
        prev_hash, claimed = bytes.fromhex(line.prev_hash), bytes.fromhex(line.hash)
        body_sha256 = bytes.fromhex(line.body_sha256)
    except (ValueError, binascii.Error):
        raise ExportFailure(position, "its body_base64, prev_hash or hash is not well formed") from None
    if hashlib.sha256(body).digest() != body_sha256 or body_sha256.hex() != line.body_sha256:
        raise ExportFailure(position, "the body does not match its sha256")
    if previous is None:
        anchors = {GENESIS_HASH} if position == 1 else wanted.get(position - 1, set())
        if not anchors:
            raise ExportFailure(
                position, f"the export starts here, and no checkpoint at {position - 1} anchors it"
            )
        if prev_hash not in anchors:
            raise ExportFailure(position, f"prev_hash does not continue the checkpoint at {position - 1}")
    elif prev_hash != previous:
        raise ExportFailure(position, "the chain is broken: prev_hash is not the previous event's hash")
    if row_hash(prev_hash, _row(line, body_sha256)) != claimed:
        raise ExportFailure(position, "the envelope does not match its hash")
    if _payload_differs(body, line.payload):
        raise ExportFailure(position, "the payload is not the body's JSON")
    if any(expected_hash != claimed for expected_hash in wanted.get(position, ())):
        raise ExportFailure(position, f"the checkpoint at {position} does not match: the log was rewritten")
    return claimed


def _row(line: _Line, body_sha256: bytes) -> dict[str, Any]:
    return {
        "id": line.id,
        "received_at": line.received_at,
        "kind": line.kind,
        "event_type": line.event_type,
        "org_id": line.org_id,
        "external_id": line.external_id,
        "content_type": line.content_type,
        "body_sha256": body_sha256,
        "request_id": line.request_id,
        "admitted_from": line.admitted_from,
    }


def _payload_differs(body: bytes, payload: msgspec.Raw) -> bool:
    # The payload is a decoded copy for reading; the hashes cover the body. A copy that says something
    # else than the body would mislead whoever reads it, so it is held to the body too.
    claimed = msgspec.json.decode(payload)
    if claimed is None:
        return False
    try:
        return bool(msgspec.json.decode(body) != claimed)
    except (msgspec.DecodeError, RecursionError):
        return False  # not decodable here either: nothing to compare
