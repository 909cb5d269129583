# syntax=docker/dockerfile:1
#
# mightycall-ingest: `serve` by default; any other command of the CLI with `docker run IMAGE COMMAND ...`
# (`migrate`, `rebuild --all`, `events verify`, ...). Configuration comes only from the environment
# (docs/operations.md lists every variable). DATABASE_URL is required: the embedded PostgreSQL that
# `make run` uses is for development and is refused here.
#
# Written without a Docker engine at hand: it has not been built. tests/system/test_deploy_files.py checks what
# can be checked without one (the entrypoint and command against the real CLI, the health check
# against a real `serve`, the variables against service/core/config.py).

ARG PYTHON_IMAGE=python:3.11-slim

# Stage 1: the wheel, built from the sources (the migrations travel inside it, as service/_migrations).
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alembic ./alembic
COPY projections ./projections
COPY service ./service
COPY docs/verify_export.py ./docs/verify_export.py
RUN pip wheel --no-deps --wheel-dir /dist .

# Stage 2: a virtualenv with the wheel and its runtime dependencies (no dev or bench extras). No source
# tree: the command runs from site-packages, as after any `pip install`.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY --from=wheel /dist /dist
# pip's cache lives in a build cache, not in a layer: a change to the code rebuilds the wheel, and the
# dependencies then come from that cache instead of the network.
RUN --mount=type=cache,target=/root/.cache/pip /opt/venv/bin/pip install /dist/*.whl

FROM ${PYTHON_IMAGE}
# A fixed numeric id, so that an orchestrator can check "not root" without reading /etc/passwd.
RUN groupadd --system --gid 10001 mightycall \
    && useradd --system --uid 10001 --gid mightycall --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mightycall
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Any directory will do: the installed command needs nothing beside it, and writes nothing.
WORKDIR /
USER 10001:10001
EXPOSE 8000

# /health says the process is alive: the liveness check. An orchestrator's readiness probe goes to
# /ready (the database reachable as a primary, schema at head), never to /ready/projections, which is
# for alerting: a stopped projection must not take ingestion out of service.
# Python's urllib, because the slim image has no curl. The port is the one CMD gives `serve`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

# serve stops gracefully on SIGTERM: requests in flight are answered, queued deliveries committed, the
# projector child stopped; that takes up to 15 s + 15 s. Give it `docker stop --time 40` (compose:
# stop_grace_period), or the rest is cut off by SIGKILL (nothing acknowledged is lost either way).
STOPSIGNAL SIGTERM

# `exec`, so that the CLI is the process that receives SIGTERM (behind `docker run --init`, if used).
ENTRYPOINT ["/bin/sh", "-c", "if [ -z \"${DATABASE_URL:-}\" ]; then echo 'mightycall-ingest: DATABASE_URL is not set; the container needs a PostgreSQL 15 or newer (the embedded one is for development only)' >&2; exit 64; fi; exec mightycall-ingest \"$@\"", "mightycall-ingest"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
