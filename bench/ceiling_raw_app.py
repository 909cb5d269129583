"""The HTTP ceiling in the service's style: bench/ceiling_app.py with its webhook POSTs answered by a raw
ASGI handler in front of it (bench/raw_style.py), as `serve` answers its own.

    uvicorn bench.ceiling_raw_app:app
"""

from __future__ import annotations

from bench import ceiling_app
from bench.raw_style import raw_style

app = raw_style(ceiling_app.app, ceiling_app.accept)
