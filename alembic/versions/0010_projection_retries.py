"""How often the live projector retried each projection on a passing database condition, for /metrics:
the projector runs in a process of its own, and /metrics is served by the web process.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        -- A counter per projection and reason (the error's class: LockNotAvailableError, DiskFullError,
        -- ...), added to by the live projector after its retries; never reset.
        CREATE TABLE projection_retries (
            name        text NOT NULL REFERENCES projection_checkpoints (name),
            reason      text NOT NULL,
            retries     bigint NOT NULL CHECK (retries >= 0),
            last_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (name, reason)
        );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE projection_retries")
