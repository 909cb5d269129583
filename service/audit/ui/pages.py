"""The contents of the audit pages (service/audit/ui/html.py lays them out): the event list, one event,
the rejected deliveries, and where the projections, the last checkpoint and the last verification stand."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from projections.status import ProjectionStatus
from service.audit.queries import Page
from service.audit.ui.html import ROOT, body_text, esc, link, table
from service.core.payloads import KINDS

__all__ = [
    "LastCheckpoint",
    "LastVerification",
    "event_content",
    "events_content",
    "rejected_content",
    "status_content",
]

_PREVIEW_CHARS = 2000
_LABELS = {"event_type": "event type", "org_id": "organization", "external_id": "external id"}
_EXAMPLES = {"org_id": "UUID", "since": "2024-01-20T14:30:00Z", "until": "2024-01-21T00:00:00Z"}
_RUN_BY = {"cli": "<code>events verify</code>", "api": "<code>GET /audit/verify</code>"}


@dataclass(frozen=True, slots=True)
class LastCheckpoint:
    position: int
    head_hash: bytes
    created_at: Any
    still_in_log: bool
    """Whether the log's event at `position` still has that hash: a cheap look at one row, not a
    verification of the whole log."""


@dataclass(frozen=True, slots=True)
class LastVerification:
    """The last row of audit_verifications (alembic 0007)."""

    verified_at: Any
    ok: bool
    head_position: int
    head_hash: bytes
    failure_position: int | None
    failure_reason: str | None
    checkpoints_checked: int
    by: str


def _filters(path: str, params: Mapping[str, str], names: Iterable[str]) -> str:
    fields = []
    for name in names:
        label = esc(_LABELS.get(name, name.replace("_", " ")))
        if name == "kind":
            options = "".join(
                f'<option value="{esc(kind)}"{" selected" if params.get(name) == kind else ""}>'
                f"{esc(kind or 'any')}</option>"
                for kind in ("", *KINDS)
            )
            fields.append(f'<label>{label} <select name="kind" id="f-kind">{options}</select></label>')
            continue
        fields.append(
            f'<label>{label} <input name="{esc(name)}" id="f-{esc(name)}" value="{esc(params.get(name, ""))}"'
            f' placeholder="{esc(_EXAMPLES.get(name, ""))}"></label>'
        )
    return (
        f'<form class="filters" method="get" action="{path}">{"".join(fields)}'
        f'<button type="submit" id="filter">Filter</button> <a href="{path}">clear</a></form>'
    )


def _next(path: str, params: Mapping[str, str], page: Page) -> str:
    if page.next_after is None:
        return ""
    return f'<p><a id="next" href="{esc(link(path, params, after=page.next_after))}">Next page</a></p>'


def events_content(params: Mapping[str, str], filter_names: Iterable[str], page: Page) -> str:
    # Whatever the envelope holds (a field added to the audit API shows here too), but the payload.
    columns = [key for key in page.items[0] if key not in ("payload", "body_sha256")] if page.items else []
    return (
        _filters(ROOT, params, filter_names)
        + table(columns, page.items, href=f"{ROOT}/events/{{id}}")
        + _next(ROOT, params, page)
    )


def event_content(fields: Mapping[str, Any], body: bytes, body_matches: bool) -> str:
    rows = "".join(f"<dt>{esc(key)}</dt><dd><code>{esc(value)}</code></dd>" for key, value in fields.items())
    text, valid = body_text(body)
    check = (
        '<span class="ok" id="sha-check">the body matches its sha256</span>'
        if body_matches
        else '<span class="error" id="sha-check">the body does NOT match its sha256</span>'
    )
    encoding = "" if valid else " It is not valid UTF-8: those bytes show as U+FFFD."
    return (
        f'<dl id="envelope">{rows}</dl><h2>Raw body</h2><p>{len(body)} bytes, shown as text: {check}.'
        f" Control and direction characters show as [U+XXXX].{encoding}</p>"
        f'<pre id="raw-body">{esc(text)}</pre>'
    )


def rejected_content(params: Mapping[str, str], page: Page, scoped: bool) -> str:
    rows = []
    for item in page.items:
        row = {k: v for k, v in item.items() if k != "body_base64"}
        if (admission := item["last_admission"]) is not None:
            row["last_admission"] = " ".join(
                f"{v}"
                for v in (admission["outcome"], admission["event_id"], admission["reason"])
                if v is not None
            )
        if item["body_base64"] is not None:
            text = body_text(base64.b64decode(item["body_base64"]))[0]
            row["body"] = text[:_PREVIEW_CHARS] + ("…" if len(text) > _PREVIEW_CHARS else "")
        rows.append(row)
    columns = [*(k for k in page.items[0] if k != "body_base64"), "body"] if page.items else []
    note = (
        "<p>A token limited to one organization sees no rejected deliveries: a refused delivery may "
        "name no organization, or one it had no right to.</p>"
        if scoped
        else ""
    )
    path = f"{ROOT}/rejected"
    return (
        note
        + _filters(path, params, ("kind", "since", "until"))
        + table(columns, rows, preformatted=("body",))
        + _next(path, params, page)
    )


def _state(status: ProjectionStatus) -> str:
    if status.error is not None:
        return f"stopped at event {status.error_position}: {status.error}"
    if status.rebuild_due:
        return f"rebuild due: the table was built by version {status.table_version}"
    return "running" if status.lag == 0 else "catching up"


def _verification(verification: LastVerification | None, position: int) -> str:
    if verification is None:
        return '<p id="verification">Never verified.</p>'
    v = verification
    verdict = (
        '<span class="ok">the log verified</span>'
        if v.ok
        else f'<span class="error">FAILED at event {esc(v.failure_position)}: {esc(v.failure_reason)}</span>'
    )
    since = position - v.head_position
    appended = (
        f"{since} event{'' if since == 1 else 's'} appended since."
        if since >= 0
        else f'<span class="error">the head has moved back {-since} events since</span>.'
    )
    return (
        f'<p id="verification">{verdict}: {esc(v.verified_at)}, by {_RUN_BY.get(v.by, esc(v.by))},'
        f" covering {esc(v.head_position)} events up to hash <code>{esc(v.head_hash.hex())}</code>"
        f" and {esc(v.checkpoints_checked)} checkpoint(s).</p>"
        f'<p id="verification-since">{appended}</p>'
    )


def status_content(
    statuses: list[ProjectionStatus],
    head: tuple[int, bytes],
    last: LastCheckpoint | None,
    verification: LastVerification | None,
) -> str:
    projections = table(
        ("projection", "version", "position", "lag (events)", "state"),
        (
            {
                "projection": s.name,
                "version": s.version,
                "position": s.position,
                "lag (events)": s.lag,
                "state": _state(s),
            }
            for s in statuses
        ),
    )
    position, head_hash = head
    if last is None:
        checkpoint = (
            '<p id="checkpoint">No checkpoint has been recorded yet'
            " (<code>mightycall-ingest events checkpoint</code> records one).</p>"
        )
    else:
        verdict = (
            '<span class="ok">the log still holds it</span>'
            if last.still_in_log
            else '<span class="error">the log no longer holds it: it was rewritten or truncated</span>'
        )
        checkpoint = (
            f'<p id="checkpoint">Position {esc(last.position)},'
            f" hash <code>{esc(last.head_hash.hex())}</code>, recorded {esc(last.created_at)}: {verdict}.</p>"
        )
    return (
        f"<h2>Projections</h2>{projections}"
        f'<h2>Log head</h2><p id="head">{esc(position)} events, hash <code>{esc(head_hash.hex())}</code></p>'
        f"<h2>Last checkpoint</h2>{checkpoint}"
        f"<h2>Last verification</h2>{_verification(verification, position)}"
        "<p>A full verification reads the whole log, so it is not run here: use "
        "<code>mightycall-ingest events verify</code> or <code>GET /audit/verify</code>; each records its"
        " result, shown above. That record says what a verification answered; only running one proves"
        " anything.</p>"
    )
