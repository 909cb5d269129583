#!/usr/bin/env python3
"""Verify an export of the mightycall-ingest event log, with nothing but Python's standard library.

    python3 verify_export.py EXPORT.ndjson [CHECKPOINT.json ...]

EXPORT.ndjson is what `GET /audit/export` or `mightycall-ingest events export` wrote, unfiltered (a
filtered export leaves holes in the chain). Each CHECKPOINT file holds lines such as
{"position": 120, "head_hash": "9f3c…"} from `GET /audit/checkpoint` or `events checkpoint`, kept
somewhere the operator cannot change them. docs/verifying-exports.md writes the algorithm out.

Exit status 0 when every check holds; otherwise 1, with the first failing event and why on stderr.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys

GENESIS_HASH = bytes(32)
"""The hash before the first event: 32 zero bytes."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)  # noqa: UP017 - Pythons before 3.11 too


class Failure(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event {position}: {reason}")


def envelope(line: dict) -> bytes:
    """The bytes an event's hash covers besides the previous hash: a compact JSON array.

    This is the one place that knows the envelope's fields; if the service adds one, change it here.
    """
    received = dt.datetime.fromisoformat(line["received_at"].replace("Z", "+00:00"))
    fields = [
        line["id"],
        (received - _EPOCH) // dt.timedelta(microseconds=1),  # microseconds since the Unix epoch
        line["kind"],
        line["event_type"],
        line["org_id"],
        line["external_id"],
        line["content_type"],
        line["body_sha256"],
    ]
    admitted_from = line.get("admitted_from")  # absent from exports made before admissions existed
    # The array ends at its last element that is not null: events from before request ids have eight
    # fields, and only an event admitted from a refused delivery (`rejected admit`) has a tenth.
    if line["request_id"] is not None or admitted_from is not None:
        fields.append(line["request_id"])
    if admitted_from is not None:
        fields.append(admitted_from)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(prev_hash: bytes, line: dict) -> bytes:
    return hashlib.sha256(prev_hash + envelope(line)).digest()


def read_checkpoints(paths: list[str]) -> dict[int, set[str]]:
    wanted: dict[int, set[str]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as file:
            for number, text in enumerate(file, start=1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                    position, head_hash = int(data["position"]), bytes.fromhex(data["head_hash"]).hex()
                except (ValueError, KeyError, TypeError):
                    raise SystemExit(
                        f"{path}:{number}: not a checkpoint (JSON with position and head_hash)"
                    ) from None
                wanted.setdefault(position, set()).add(head_hash)
    return wanted


def _parse(text: str, after: int) -> dict:
    try:
        line = json.loads(text)
        missing = {"id", "prev_hash", "hash", "body_sha256", "body_base64"} - set(line)
        if missing or not isinstance(line["id"], int) or isinstance(line["id"], bool):
            raise TypeError
        return line
    except (ValueError, KeyError, TypeError):
        raise Failure(after + 1, "its line is not a complete export line (cut short, or altered)") from None


def _check_line(line: dict, expected: int, previous: bytes | None, wanted: dict[int, set[str]]) -> bytes:
    position = line["id"]
    if previous is not None and position != expected:
        if position < expected:
            raise Failure(position, f"it appears again, or out of order, after event {expected - 1}")
        raise Failure(expected, f"it is missing (the next line holds event {position})")
    try:
        body = base64.b64decode(line["body_base64"], validate=True)
        prev_hash, claimed = bytes.fromhex(line["prev_hash"]), bytes.fromhex(line["hash"])
    except (ValueError, TypeError):
        raise Failure(position, "its body_base64, prev_hash or hash is not well formed") from None
    if hashlib.sha256(body).hexdigest() != line["body_sha256"]:
        raise Failure(position, "the body does not match its sha256")
    if previous is None:
        # The first line: it must follow the genesis, or a checkpoint the auditor kept.
        anchors = {GENESIS_HASH.hex()} if position == 1 else wanted.get(position - 1, set())
        if not anchors:
            raise Failure(position, f"the export starts here, and no checkpoint at {position - 1} anchors it")
        if prev_hash.hex() not in anchors:
            raise Failure(position, f"prev_hash does not continue the checkpoint at {position - 1}")
    elif prev_hash != previous:
        raise Failure(position, "the chain is broken: prev_hash is not the previous event's hash")
    try:
        recomputed = event_hash(prev_hash, line)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Failure(position, "its envelope fields are not well formed") from None
    if recomputed != claimed:
        raise Failure(position, "the envelope does not match its hash")
    if line.get("payload") is not None and _decoded(body, line["payload"]) is False:
        raise Failure(position, "the payload is not the body's JSON")
    if any(expected_hash != claimed.hex() for expected_hash in wanted.get(position, ())):
        raise Failure(position, f"the checkpoint at {position} does not match: the log was rewritten")
    return claimed


def _decoded(body: bytes, payload: object) -> bool | None:
    """Whether `payload` is `body` decoded; None when this Python cannot decode the body."""
    try:
        return bool(json.loads(body.decode("utf-8")) == payload)
    except (ValueError, RecursionError):
        return None


def verify(lines: list[str], wanted: dict[int, set[str]]) -> tuple[int, int, str]:
    """(first position, last position, last hash) of a verified export; raises Failure."""
    first, expected, previous = 0, 1, None
    for text in lines:
        if not text.strip():
            continue
        line = _parse(text, expected - 1)
        previous = _check_line(line, expected, previous, wanted)
        first = first or line["id"]
        expected = line["id"] + 1
    last = expected - 1
    beyond = [position for position in wanted if position > last]
    if previous is not None and beyond:
        raise Failure(last + 1, f"a checkpoint at {min(beyond)} lies beyond the export's end: truncated")
    return first, last, "" if previous is None else previous.hex()


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8", newline="\n") as file:
        lines = file.read().split("\n")
    try:
        first, last, head = verify(lines, read_checkpoints(argv[1:]))
    except Failure as failure:
        print(f"verification failed at {failure}", file=sys.stderr)
        return 1
    if not head:
        print("ok: the export holds no events")
    else:
        print(f"ok: events {first} to {last} verified; the last hash is {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
