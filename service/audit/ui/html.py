"""The audit page's layout and building blocks: plain f-strings, every value through `esc` (html.escape).

Webhook bodies, ids and rejection details are whatever a sender chose to send: nothing of them may ever
become markup. There is no JavaScript at all; the page's Content-Security-Policy forbids it anyway.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

__all__ = ["ROOT", "body_text", "error_page", "esc", "link", "login_page", "page", "table"]

ROOT = "/audit/ui"
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#222}
header{display:flex;gap:1.2em;align-items:center;border-bottom:1px solid #ccc;padding:.6em 0}
header{margin-bottom:1em}
header form{margin-left:auto}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.6em;white-space:pre-wrap;word-break:break-all;margin:0}
td pre{min-width:30em}
code,pre{font:12px/1.4 ui-monospace,monospace}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em 1.2em}
dt{font-weight:600}
dd{margin:0;word-break:break-all}
.error{color:#a00;font-weight:600}
.ok{color:#070;font-weight:600}
.filters label{display:inline-block;margin:0 .8em .4em 0}
"""
# Shown as [U+XXXX]: control characters, and those that reorder or hide text (a body could otherwise make
# itself read differently from what its bytes say).
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def esc(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    return html.escape(str(value), quote=True)


def body_text(body: bytes) -> tuple[str, bool]:
    """The body as text to show, and whether it was valid UTF-8 (if not, bad bytes show as U+FFFD)."""
    try:
        text, valid = body.decode("utf-8"), True
    except UnicodeDecodeError:
        text, valid = body.decode("utf-8", errors="replace"), False
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m[0]):04X}]", text), valid


def link(path: str, params: Mapping[str, str], **changes: object) -> str:
    """`path` with the non-empty `params`, `changes` applied: the URL of another page of a list."""
    query = {k: v for k, v in {**params, **{k: str(v) for k, v in changes.items()}}.items() if v}
    return f"{path}?{urlencode(query)}" if query else path


def page(title: str, content: str, scope: UUID | bool | None = False) -> str:
    """A whole page. `scope`: False when not signed in, else the session's organization (None: all)."""
    header = "<strong>mightycall-ingest audit</strong>"
    if scope is not False:
        seen = "all organizations" if scope is None else f"organization {esc(scope)}"
        # The status page is refused to a token limited to one organization (service/audit/ui/routes.py).
        status = "" if scope is not None else f'<a href="{ROOT}/status">Projections and verification</a>'
        header += (
            f'<a href="{ROOT}">Events</a><a href="{ROOT}/rejected">Rejected deliveries</a>{status}'
            f'<form method="post" action="{ROOT}/logout"><span id="signed-in">Signed in for {seen}</span> '
            '<button type="submit" id="sign-out">Sign out</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · mightycall-ingest audit</title><style>{_STYLE}</style></head>"
        f"<body><header>{header}</header><main><h1>{esc(title)}</h1>{content}</main></body></html>"
    )


def login_page(error: str | None = None) -> str:
    message = f'<p class="error" id="login-error">{esc(error)}</p>' if error else ""
    # The field is never filled in again: a refused token is not echoed.
    return page(
        "Sign in",
        f'{message}<form method="post" action="{ROOT}/login"><label>Audit token '
        '<input type="password" name="token" id="token" autocomplete="off" required autofocus></label> '
        '<button type="submit" id="sign-in">Sign in</button></form>',
    )


def error_page(status: int, message: str, scope: UUID | bool | None = False) -> str:
    content = f'<p class="error" id="error">{esc(message)}</p><p><a href="{ROOT}">Back to the events</a></p>'
    return page(str(status), content, scope)


def table(
    columns: Iterable[str],
    rows: Iterable[Mapping[str, Any]],
    href: str | None = None,
    preformatted: Iterable[str] = (),
) -> str:
    """Rows as a table; `href`, formatted with a row, makes its first cell a link; the `preformatted`
    columns hold text kept as it is (still escaped)."""
    columns, preformatted = list(columns), set(preformatted)
    lines = []
    for row in rows:
        cells = [
            f"<pre>{esc(row.get(column))}</pre>" if column in preformatted else esc(row.get(column))
            for column in columns
        ]
        if href is not None:
            cells[0] = f'<a href="{esc(href.format(**row))}">{cells[0]}</a>'
        lines.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    if not lines:
        return '<p id="empty">Nothing matches.</p>'
    head = "".join(f"<th>{esc(column)}</th>" for column in columns)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
