"""Checkpoints of the log's head taken for auditors, and indexes for the audit filters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE INDEX event_log_received_at ON event_log (received_at);

        -- Every checkpoint handed to an auditor. Append-only like the log: `events verify` checks that
        -- each one is still a prefix of the log, so a rewrite must also forge these (and the copies the
        -- auditors keep outside the database).
        CREATE TABLE audit_checkpoints (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            position    bigint NOT NULL CHECK (position >= 0),
            head_hash   bytea NOT NULL CHECK (length(head_hash) = 32),
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE TRIGGER audit_checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
            FOR EACH ROW EXECUTE FUNCTION event_log_refuse_change();
        CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
        ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_update_or_delete;
        ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate;
    """)


def downgrade() -> None:
    op.execute("""
        DROP TABLE audit_checkpoints;
        DROP INDEX event_log_received_at;
    """)
