"""append_events(): a whole append (lock, dedupe, positions, hash chain, insert, head, notify) as one
statement, so that it costs the service one round trip instead of six (service/eventlog/append.py).
The function is service/eventlog/sql/append_events_v1.sql.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op
from service.eventlog.sql import load_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(load_sql("append_events_v1.sql"))


def downgrade() -> None:
    op.execute("DROP FUNCTION append_events")
