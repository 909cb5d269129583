"""Request ids: each delivery's id, shared by its log line, its event (chained) and its rejection.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: events logged before this have none, and adding the column then
    # rewrites no row of the log (an immutable table whose triggers would refuse an UPDATE anyway).
    op.execute("""
        ALTER TABLE event_log ADD COLUMN request_id text;
        ALTER TABLE rejected_deliveries ADD COLUMN request_id text;
        CREATE INDEX event_log_request_id ON event_log (request_id) WHERE request_id IS NOT NULL;
    """)


def downgrade() -> None:
    # Dropping the column would break the chain of every event logged with one.
    raise RuntimeError("0004 adds request ids to the chained envelope and cannot be downgraded")
