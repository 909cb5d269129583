"""Signed-out audit page sessions, so that signing out ends a session on every `serve` process.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        -- The sessions are signed cookies that any process accepts (service/audit/ui/session.py); one
        -- signed out is listed here, by the sha256 of its value (never the value), until it expires.
        CREATE TABLE audit_ui_signouts (
            cookie_sha256  bytea PRIMARY KEY CHECK (length(cookie_sha256) = 32),
            expires_at     timestamptz NOT NULL
        );
    """)


def downgrade() -> None:
    op.execute("DROP TABLE audit_ui_signouts")
