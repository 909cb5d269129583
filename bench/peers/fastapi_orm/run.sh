#!/bin/sh
# PEER FOR COMPARISON - NOT PART OF THE PRODUCT.
# Usage: DATABASE_URL=postgresql://... PEER_WEBHOOK_SECRET=... [PEER_VENV=/tmp/peer-venv] ./run.sh PORT [WORKERS]
# Serves app:app with uvicorn from this folder; WORKERS defaults to 1.
set -eu
PORT=${1:?usage: run.sh PORT [WORKERS]}
WORKERS=${2:-1}
VENV=${PEER_VENV:-/tmp/peer-venv}
: "${DATABASE_URL:?DATABASE_URL must be set}"
: "${PEER_WEBHOOK_SECRET:?PEER_WEBHOOK_SECRET must be set}"
cd "$(dirname "$0")"
exec "$VENV/bin/python" -m uvicorn app:app --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
    --no-access-log --log-level warning
