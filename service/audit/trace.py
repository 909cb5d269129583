"""Tracing a projected row back to the events of the log that made it."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from projections.model import Event
from projections.registry import PROJECTIONS
from service.audit.queries import event_json
from service.core.errors import InvalidPayload, InvalidQuery
from service.core.payloads import decode

__all__ = ["TRACEABLE", "trace"]

# table -> the projection that writes it. A row is named by the second column of its natural key
# (call_id, sms_id, report_id; for recordings the call_id): the first is always org_id.
TRACEABLE = {projection.table.name: projection for projection in PROJECTIONS.values()}

# Candidates are narrowed in SQL (by external id, which the envelope indexes; a recording names its
# call only in its body), then confirmed by the projection's own `keys`. The body is compared as bytes,
# never cast to json: the log keeps bodies PostgreSQL's JSON refuses (a \u0000 the door took before it
# refused it), and one such cast failing failed the trace of every recording of the organization. A
# body holding the key's bytes may name it; so may one holding any escape (JSON may spell any character
# as one: 0x5c is the backslash), which is left to the confirmation.
_CANDIDATES = """
    SELECT id, received_at, kind, event_type, org_id, external_id, body, body_sha256, request_id,
           admitted_from
    FROM event_log
    WHERE org_id = $1 AND kind = ANY($2::text[])
      AND (external_id = $3
           OR (kind = 'recordings'
               AND (position($4::bytea IN body) > 0 OR position('\\x5c'::bytea IN body) > 0)))
    ORDER BY id
"""


async def trace(conn: asyncpg.Connection, table: str, key: str, org_id: UUID) -> list[dict[str, object]]:
    projection = TRACEABLE.get(table)
    if projection is None:
        raise InvalidQuery(f"`table` must be one of {', '.join(TRACEABLE)}")
    events = []
    for row in await conn.fetch(_CANDIDATES, org_id, list(projection.kinds), key, key.encode()):
        try:
            payload = decode(row["kind"], bytes(row["body"]))
        except InvalidPayload:
            # No projection can apply it (the projector stops on it), so it made no row.
            continue
        event = Event(row["id"], row["kind"], row["org_id"], payload)
        if any(touched[1] == key for touched in projection.keys(event)):
            events.append(event_json(row))
    return events
