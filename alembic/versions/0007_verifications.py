"""The result of every full verification of the log, for the audit page's "last verification".

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        -- One row per `events verify` (cli) or GET /audit/verify (api): what it said, and about which
        -- head. Append-only like the log, so that a failed verification cannot be quietly taken back.
        CREATE TABLE audit_verifications (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            verified_at          timestamptz NOT NULL DEFAULT now(),
            ok                   boolean NOT NULL,
            head_position        bigint NOT NULL CHECK (head_position >= 0),
            head_hash            bytea NOT NULL CHECK (length(head_hash) = 32),
            failure_position     bigint CHECK (failure_position >= 0),
            failure_reason       text CHECK (length(failure_reason) <= 1000),
            checkpoints_checked  int NOT NULL CHECK (checkpoints_checked >= 0),
            by                   text NOT NULL CHECK (by IN ('cli', 'api')),
            -- A failure names where and why; a success names neither.
            CHECK (ok = (failure_position IS NULL) AND ok = (failure_reason IS NULL))
        );
        CREATE TRIGGER audit_verifications_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_verifications
            FOR EACH ROW EXECUTE FUNCTION event_log_refuse_change();
        CREATE TRIGGER audit_verifications_no_truncate BEFORE TRUNCATE ON audit_verifications
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
        ALTER TABLE audit_verifications ENABLE ALWAYS TRIGGER audit_verifications_no_update_or_delete;
        ALTER TABLE audit_verifications ENABLE ALWAYS TRIGGER audit_verifications_no_truncate;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE audit_verifications")
