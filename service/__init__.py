"""mightycall-ingest: MightyCall webhooks into an immutable PostgreSQL event log.

One webhook's path: web/ (the route: secret, body limits) -> ingest/ (decode, organization, rejection)
-> eventlog/ (group commit, append_events()) -> PostgreSQL -> projections/ (live projector, tables).

    core/       config, errors, payloads, phone numbers, JSON logs; imports nothing of ours
    database/   the pool and its error translation, migrations, grants, the embedded PostgreSQL
    eventlog/   append (the only writer), group commit, hash chain, verify; sql/ holds append_events()
    ingest/     the ingestion function (kind, bytes, request facts -> outcome), organizations,
                rejections, reference data
    web/        the webhooks' own ASGI handler in front of litestar; auth, request ids, health, metrics
    audit/      the read-only audit API (a Controller), its queries, trace, ui/ (the pages)
    server/     the serve process: uvicorn set-up, HTTP limits, the projector child, asgi, devrun
    cli/        the mightycall-ingest command, one module per command group
    app.py      create_app(): the one composition root

Imports point down this list's layers (cli/server > app > audit > web > ingest, projections >
eventlog > database > core); `make lint` checks it ([tool.importlinter] in pyproject.toml).
"""
