"""Redrive: refused deliveries admitted to the log once their cause is fixed (`rejected admit`).

An admitted event says which refusal it came from in `event_log.admitted_from`, chained in its envelope;
every attempt to admit a refusal, whatever it found, is a row of `rejection_admissions`.
`rejected_deliveries` itself is never changed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op
from service.eventlog.sql import load_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE event_log ADD COLUMN admitted_from bigint;
        CREATE TABLE rejection_admissions (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            rejection_id  bigint NOT NULL REFERENCES rejected_deliveries (id),
            attempted_at  timestamptz NOT NULL DEFAULT now(),
            kind          text NOT NULL,
            outcome       text NOT NULL CHECK (outcome IN ('admitted', 'duplicate', 'refused', 'no_body')),
            reason        text,
            details       text,
            -- The event the body is in the log as: the one it became, or the one it duplicates.
            event_id      bigint,
            CHECK ((outcome IN ('admitted', 'duplicate')) = (event_id IS NOT NULL))
        );
        CREATE INDEX rejection_admissions_rejection_id ON rejection_admissions (rejection_id, id);
        -- Append-only like the log: what an admission found stays as it was found.
        CREATE TRIGGER rejection_admissions_no_update_or_delete
            BEFORE UPDATE OR DELETE ON rejection_admissions
            FOR EACH ROW EXECUTE FUNCTION event_log_refuse_change();
        CREATE TRIGGER rejection_admissions_no_truncate BEFORE TRUNCATE ON rejection_admissions
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
        ALTER TABLE rejection_admissions ENABLE ALWAYS TRIGGER rejection_admissions_no_update_or_delete;
        ALTER TABLE rejection_admissions ENABLE ALWAYS TRIGGER rejection_admissions_no_truncate;
    """)
    op.execute(load_sql("append_events_v2.sql"))
    # Version 1's signature stays, as version 2 with nothing admitted: a `serve` of the previous release
    # keeps appending until it is restarted on the new code (docs/operations.md, Upgrade).
    op.execute("""
        CREATE OR REPLACE FUNCTION append_events(
            p_received_at timestamptz[], p_kind text[], p_event_type text[], p_org_id uuid[],
            p_external_id text[], p_content_type text[], p_body bytea[], p_body_sha256 bytea[],
            p_request_id text[], p_envelope_tail bytea[]
        ) RETURNS TABLE (event_id bigint, duplicate boolean)
        LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
            SELECT * FROM append_events(p_received_at, p_kind, p_event_type, p_org_id, p_external_id,
                                        p_content_type, p_body, p_body_sha256, p_request_id,
                                        p_envelope_tail, NULL::bigint[])
        $$;
    """)


def downgrade() -> None:
    # Admitted events are part of the chain: once there is one, its column cannot go.
    raise RuntimeError("0009 adds admitted events to the log and cannot be downgraded")
