"""`GET /audit/verifier.py`: docs/verify_export.py as this installation carries it, for auditors to read
and run.

It asks for an audit token like the rest of the audit API: it holds nothing secret, but with no token
configured the audit API is absent as a whole, and a verifier is of use only beside an export, which
needs a token anyway. An auditor should still compare it with the published source before trusting it:
a verifier handed over by the operator it audits proves nothing by itself (docs/verifying-exports.md).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import Response

from service.core.errors import NotFound

__all__ = ["VERIFIER_PATH", "standalone_verifier"]

_SERVICE = Path(__file__).resolve().parents[1]
_PACKAGED = _SERVICE / "_verifier" / "verify_export.py"
VERIFIER_PATH = _PACKAGED if _PACKAGED.is_file() else _SERVICE.parent / "docs" / "verify_export.py"
"""Where an installed wheel carries docs/verify_export.py (pyproject.toml), or the checkout's own."""


@cache
def _source() -> bytes | None:
    try:
        return VERIFIER_PATH.read_bytes()
    except FileNotFoundError:
        return None


def standalone_verifier() -> Response[bytes]:
    source = _source()
    if source is None:
        raise NotFound("this installation does not include the standalone verifier (verify_export.py)")
    return Response(
        source,
        media_type="text/x-python; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="verify_export.py"',
            "X-Content-Type-Options": "nosniff",
        },
    )
