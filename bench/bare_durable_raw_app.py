"""The bare durable receiver in the service's style: bench/bare_durable_app.py (its group commit, its
lifespan) with its webhook POSTs answered by a raw ASGI handler in front of it (bench/raw_style.py), as
`serve` answers its own. The service's ratio is taken against this one: same style, same stack.

    DATABASE_URL=... uvicorn bench.bare_durable_raw_app:app
"""

from __future__ import annotations

from bench import bare_durable_app
from bench.raw_style import raw_style

app = raw_style(bare_durable_app.app, bare_durable_app.commit)
