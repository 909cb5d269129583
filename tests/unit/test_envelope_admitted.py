"""The envelope of an event admitted by `rejected admit`: ten fields, and nothing older changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from service.eventlog.chain import GENESIS_HASH, event_hash

ORG = uuid.UUID("00000000-0000-0000-0000-000000000001")
SHA = hashlib.sha256(b"{}").digest()
FIELDS = dict(
    event_id=7,
    received_at=dt.datetime(2024, 1, 20, 14, 30, 0, 7, tzinfo=dt.UTC),
    kind="calls",
    event_type="call.completed",
    org_id=ORG,
    external_id="c1",
    content_type=None,
    body_sha256=SHA,
)
EIGHT = f'[7,1705761000000007,"calls","call.completed","{ORG}","c1",null,"{SHA.hex()}"'


def sha(envelope: str) -> bytes:
    return hashlib.sha256(GENESIS_HASH + envelope.encode()).digest()


def test_an_admitted_event_chains_the_refusal_it_came_from_as_a_tenth_field() -> None:
    assert event_hash(GENESIS_HASH, **FIELDS, request_id="req-1", admitted_from=42) == sha(
        EIGHT + ',"req-1",42]'
    )
    # Without a request id, the ninth field is there as null, so that the tenth keeps its place.
    assert event_hash(GENESIS_HASH, **FIELDS, request_id=None, admitted_from=42) == sha(EIGHT + ",null,42]")


def test_a_live_event_keeps_the_envelope_it_had_before_admissions_existed() -> None:
    assert event_hash(GENESIS_HASH, **FIELDS, request_id=None, admitted_from=None) == sha(EIGHT + "]")
    assert event_hash(GENESIS_HASH, **FIELDS, request_id="req-1", admitted_from=None) == sha(
        EIGHT + ',"req-1"]'
    )
    assert event_hash(GENESIS_HASH, **FIELDS, request_id="req-1") == sha(EIGHT + ',"req-1"]')
