"""Where a running rebuild has got to, for /metrics: the rebuild runs in a process of its own.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        -- A row per projection being rebuilt, written every second or so by the rebuild and removed
        -- by its swap. A rebuild that died leaves its row (and its shadow table) until the next one.
        CREATE TABLE rebuild_progress (
            name        text PRIMARY KEY REFERENCES projection_checkpoints (name),
            position    bigint NOT NULL CHECK (position >= 0),
            head        bigint NOT NULL CHECK (head >= 0),
            started_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE rebuild_progress")
