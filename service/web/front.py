"""The app as served: the webhooks' POSTs go to their own ASGI handler, every other request to litestar.

In front of litestar rather than inside it (one of litestar's `asgi` route handlers), because inside it a
webhook would still pay for litestar's routing and exception middleware, and an `asgi` route takes
every method of its path: litestar's 405 for the others, and the OpenAPI schema's entries, would have
to be made by hand. Here litestar keeps the four routes declared for both, and never sees their POSTs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send
from litestar.utils import normalize_path

from service.web.webhooks import WEBHOOK_PATHS

__all__ = ["Answer", "Front"]

Answer = Callable[[str, Scope, Receive, Send], Awaitable[None]]
"""ASGI with the webhook's kind first: Webhooks.answer (the benchmark's receivers have their own)."""


class Front:
    """ASGI. `litestar` is the app behind, for whatever needs it (its state, its routes)."""

    def __init__(self, litestar: Litestar, answer: Answer) -> None:
        self.litestar = litestar
        self._answer = answer
        self._kinds = {path: kind for kind, path in WEBHOOK_PATHS.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] == "POST":
            kind = self._kinds.get(scope["path"]) or self._kinds.get(_as_litestar_routes_it(scope))
            if kind is not None:
                await self._answer(kind, scope, receive, send)
                return
        await self.litestar(scope, receive, send)


def _as_litestar_routes_it(scope: Scope) -> str:
    """The path litestar would look up: without the root path, with no trailing or doubled slash. A
    POST it would route to a webhook's declared route is answered here too, whatever its spelling."""
    path = scope["path"]
    if root_path := scope.get("root_path", ""):
        path = path.split(root_path, maxsplit=1)[-1]
    return normalize_path(path)
