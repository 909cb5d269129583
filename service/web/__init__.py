"""The web layer: litestar adapters for webhooks, auth, request ids, health, metrics."""
