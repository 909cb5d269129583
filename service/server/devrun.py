"""`make run`: the embedded database, migrations, a webhook secret, then the service."""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from pathlib import Path

from service.cli import database_url
from service.core.config import ConfigError, Settings, parse_secrets
from service.database import migrations
from service.server.serve import serve

HOST, PORT = "127.0.0.1", 8000

_EXAMPLE = """\
A webhook secret was generated into {path} (shown this once):

    {secret}

Try it from another shell in this folder:

    ORG=$(.venv/bin/mightycall-ingest orgs add --name "Example Co")
    curl -sS -X POST http://{host}:{port}/functions/v1/mightycall-calls-webhook \\
      -H "Authorization: Bearer $(cat {path})" -H "Content-Type: application/json" \\
      -d '{{"event": "call.completed", "call_id": "call_1", "phone_number": "+12125551234",
           "timestamp": "2024-01-20T14:30:00Z", "org_id": "'"$ORG"'"}}'
"""


def _local_secret(var_dir: Path) -> str:
    """The secret under var/, generated on first use."""
    path = var_dir / "webhook_secret"
    if path.exists():
        print(f"Using the webhook secret in {path}.", file=sys.stderr)
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    var_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    print(_EXAMPLE.format(path=path, secret=secret, host=HOST, port=PORT), file=sys.stderr)
    return secret


def main() -> int:
    try:
        settings = Settings.from_env()
        url = database_url(settings)
        migrations.upgrade(url)
        if not settings.webhook_secrets:
            local = parse_secrets(_local_secret(settings.var_dir))
            settings = dataclasses.replace(settings, webhook_secrets=local)
    except ConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    print(
        f"Serving on http://{HOST}:{PORT} (Ctrl-C stops it; the data stays in {settings.var_dir}/).",
        file=sys.stderr,
    )
    serve(settings, url, host=HOST, port=PORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
