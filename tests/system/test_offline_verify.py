"""Verifying an export offline: the service's `events verify --export` and the standalone
docs/verify_export.py (standard library only) must give the same answer, naming the same first failing
event, for every kind of tampering of tests/system/test_verify.py applied to an export file."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.audit.queries import export_line
from service.eventlog.append import Delivery, append
from service.eventlog.chain import envelope_head, envelope_tail, row_hash
from service.eventlog.offline_verify import ExportFailure, verify_export
from service.eventlog.verify import Checkpoint, take_checkpoint
from tests.support.cli import ROOT
from tests.support.payloads import SEED
from tests.support.projecting import append_payloads

EVENTS = 6
_spec = importlib.util.spec_from_file_location("verify_export", ROOT / "docs" / "verify_export.py")
assert _spec is not None and _spec.loader is not None
standalone = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standalone)
_encode = msgspec.json.Encoder().encode


@pytest.fixture
async def lines(conn, org_id) -> list[dict]:
    for n in range(EVENTS):
        payload = {**SEED["sms"], "sms_id": f"sms-{n}", "text": 'héllo "x"\n\u2028'}
        if n == ADMITTED - 1:
            await _append_admitted(conn, org_id, payload)
        else:
            await append_payloads(conn, org_id, [("sms", payload)])
    rows = await conn.fetch("SELECT * FROM event_log ORDER BY id")
    return [json.loads(_encode(export_line(row))) for row in rows]


ADMITTED = 3
"""The event admitted from a refused delivery (`rejected admit`): its envelope has a tenth field."""


async def _append_admitted(conn, org_id, payload: dict) -> None:
    body = msgspec.json.encode({**payload, "org_id": str(org_id)})
    delivery = Delivery(
        kind="sms",
        event_type=payload["event"],
        org_id=org_id,
        external_id=payload["sms_id"],
        content_type="application/json",
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
        received_at=dt.datetime.now(dt.UTC),
        request_id=None,
        admitted_from=77,
    )
    await append(conn, [delivery])


def _text(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def _rechain(lines: list[dict], first: int) -> list[dict]:
    """A careful forger: every hash recomputed from event `first` on."""
    out = [dict(line) for line in lines]
    chain = bytes.fromhex(out[first - 2]["hash"]) if first > 1 else bytes(32)
    for line in out[first - 1 :]:
        body = base64.b64decode(line["body_base64"])
        line["body_sha256"], line["payload"] = hashlib.sha256(body).hexdigest(), json.loads(body)
        row = {**line, "body_sha256": bytes.fromhex(line["body_sha256"])}
        row["received_at"] = _datetime(line["received_at"])
        line["prev_hash"], line["hash"] = chain.hex(), row_hash(chain, row).hex()
        chain = bytes.fromhex(line["hash"])
    return out


def _datetime(raw: str):
    return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _service(text: str, checkpoints: list[Checkpoint]) -> int | None:
    try:
        verify_export([line.encode() for line in text.split("\n")], checkpoints)
    except ExportFailure as failure:
        return failure.position
    return None


def _standalone(text: str, checkpoints: list[Checkpoint]) -> int | None:
    wanted: dict[int, set[str]] = {}
    for checkpoint in checkpoints:
        wanted.setdefault(checkpoint.position, set()).add(checkpoint.head_hash.hex())
    try:
        standalone.verify(text.split("\n"), wanted)
    except standalone.Failure as failure:
        return int(str(failure).split(":")[0].removeprefix("event "))
    return None


def _changed(field: str, value: object) -> Callable[[list[dict]], list[dict]]:
    return lambda lines: [{**line, field: value} if line["id"] == 3 else line for line in lines]


_OTHER_BODY = base64.b64encode(b'{"event":"sms.received"}').decode()
TAMPERINGS: dict[str, tuple[Callable[[list[dict]], str], int]] = {
    "body": (lambda lines: _text(_changed("body_base64", _OTHER_BODY)(lines)), 3),
    "envelope": (lambda lines: _text(_changed("external_id", "forged")(lines)), 3),
    "received-at": (lambda lines: _text(_changed("received_at", "2020-01-01T00:00:00Z")(lines)), 3),
    "request-id": (lambda lines: _text(_changed("request_id", "forged-request")(lines)), 3),
    "admitted-from": (lambda lines: _text(_changed("admitted_from", 78)(lines)), 3),
    "admitted-from-dropped": (lambda lines: _text(_changed("admitted_from", None)(lines)), 3),
    "payload": (lambda lines: _text(_changed("payload", {"event": "sms.forged"})(lines)), 3),
    "dropped": (lambda lines: _text(lines[:2] + lines[3:]), 3),
    "dropped-first": (lambda lines: _text(lines[1:]), 2),
    "swapped": (lambda lines: _text([lines[0], lines[2], lines[1], *lines[3:]]), 2),
    "duplicated": (lambda lines: _text([*lines[:3], lines[2], *lines[3:]]), 3),
    "truncated-line": (lambda lines: _text(lines)[:-40], EVENTS),
    "rechained-body": (lambda lines: _text(_rechain(_changed("body_base64", _OTHER_BODY)(lines), 3)), 4),
}
"""How each file is tampered with, and the first event that must fail (checkpoint at 4 given)."""


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
async def test_the_service_and_the_standalone_verifier_fail_at_the_same_event(conn, lines, case):
    assert [line["admitted_from"] for line in lines].count(77) == 1
    checkpoint = Checkpoint(4, bytes.fromhex(lines[3]["hash"]))
    assert _service(_text(lines), [checkpoint]) is None
    assert _standalone(_text(lines), [checkpoint]) is None
    tamper, failing = TAMPERINGS[case]
    text = tamper(lines)
    assert _service(text, [checkpoint]) == failing
    assert _standalone(text, [checkpoint]) == failing


async def test_a_recomputed_chain_passes_without_a_checkpoint_and_fails_with_one(lines):
    forged = _text(_rechain(_changed("body_base64", _OTHER_BODY)(lines), 3))
    assert _service(forged, []) is None
    assert _standalone(forged, []) is None
    truncated = _text(lines[:3])
    kept = [Checkpoint(5, bytes.fromhex(lines[4]["hash"]))]
    assert _service(truncated, []) is _standalone(truncated, []) is None
    assert _service(truncated, kept) == _standalone(truncated, kept) == 4


async def test_a_partial_export_must_continue_from_a_kept_checkpoint(lines):
    rest = _text(lines[3:])
    at_3 = Checkpoint(3, bytes.fromhex(lines[2]["hash"]))
    assert _service(rest, [at_3]) is _standalone(rest, [at_3]) is None
    assert _service(rest, []) == _standalone(rest, []) == 4
    wrong = Checkpoint(3, bytes.fromhex(lines[1]["hash"]))
    assert _service(rest, [wrong]) == _standalone(rest, [wrong]) == 4


_text_values = st.text(st.characters(codec="utf-8"), max_size=30)


@given(external_id=_text_values, content_type=st.none() | _text_values, request_id=st.none() | _text_values)
def test_the_standalone_envelope_is_the_services_byte_for_byte(external_id, content_type, request_id):
    import datetime as dt
    import uuid

    row = {
        "received_at": dt.datetime(2024, 1, 20, 14, 30, 0, 7, tzinfo=dt.UTC),
        "kind": "sms",
        "event_type": "sms.received",
        "org_id": uuid.UUID(int=7),
        "external_id": external_id,
        "content_type": content_type,
        "body_sha256": bytes(range(32)),
        "request_id": request_id,
    }
    line = json.loads(_encode({**row, "id": 42, "body_sha256": row["body_sha256"].hex()}))
    assert standalone.envelope(line) == envelope_head(42) + envelope_tail(**row)  # type: ignore[arg-type]


async def _offline_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MIGHTYCALL_VAR_DIR"] = str(tmp_path / "var")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "events", "verify", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_events_verify_export_runs_with_no_database(conn, lines, tmp_path):
    export = tmp_path / "export.ndjson"
    export.write_text(_text(lines))
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text(json.dumps((await take_checkpoint(conn)).as_json(), default=str) + "\n")

    code, out, err = await _offline_cli(tmp_path, "--export", str(export), "--checkpoint", str(checkpoint))
    assert (code, err) == (0, "")
    assert json.loads(out)["head"] == {"id": EVENTS, "hash": lines[-1]["hash"]}

    export.write_text(TAMPERINGS["envelope"][0](lines))
    code, out, err = await _offline_cli(tmp_path, "--export", str(export))
    assert code == 1
    assert err.strip() == (
        "mightycall-ingest: verification failed at event 3: the envelope does not match its hash"
    )
    assert not (tmp_path / "var").exists()  # no embedded database was started

    # The standalone file, run as an auditor would.
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "docs" / "verify_export.py"), str(export),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_b = await process.communicate()
    assert process.returncode == 1
    assert err_b.decode().strip() == "verification failed at event 3: the envelope does not match its hash"
