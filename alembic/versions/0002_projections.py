"""The projected tables, their checkpoints, and phone numbers in E.164 for matching.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import os

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Projections match phone numbers on both sides normalised to E.164; the raw text stays as imported.
    # Unique per organization: "+1 212 555 1234" and "(212) 555-1234" are one number, imported once.
    op.execute("ALTER TABLE phone_numbers ADD COLUMN e164 text")
    _backfill_e164()
    op.execute("CREATE UNIQUE INDEX phone_numbers_org_e164 ON phone_numbers (org_id, e164)")

    # Row ids are derived from the natural key (projections/keys.py), so a rebuild yields the same ids.
    op.execute("""
        CREATE TABLE calls (
            id               uuid PRIMARY KEY,
            org_id           uuid NOT NULL,
            call_id          text NOT NULL,
            phone_number     text,
            phone_number_id  uuid,
            caller_name      text,
            caller_phone     text,
            duration         integer,
            status           text,
            direction        text,
            recording_url    text,
            call_date        timestamptz NOT NULL,
            event_id         bigint NOT NULL,
            UNIQUE (org_id, call_id)
        );
        CREATE INDEX calls_org_call_date ON calls (org_id, call_date DESC);

        CREATE TABLE mightycall_sms_messages (
            id               uuid PRIMARY KEY,
            org_id           uuid NOT NULL,
            sms_id           text NOT NULL,
            phone_number     text,
            phone_number_id  uuid,
            direction        text,
            sender           text,
            recipient        text,
            message          text,
            status           text,
            message_date     timestamptz NOT NULL,
            event_id         bigint NOT NULL,
            UNIQUE (org_id, sms_id)
        );
        CREATE INDEX mightycall_sms_messages_org_date ON mightycall_sms_messages (org_id, message_date DESC);

        -- One row per recording of a call, keyed by the call and the recording's URL, whichever of the
        -- call and recording webhooks came first. The call_* and recording_* columns keep what the
        -- latest call and the latest recording webhook said (projections/recordings.py).
        CREATE TABLE mightycall_recordings (
            id                      uuid PRIMARY KEY,
            org_id                  uuid NOT NULL,
            recording_id            text,
            call_id                 text NOT NULL,
            phone_number            text,
            phone_number_id         uuid,
            url                     text NOT NULL,
            duration                integer,
            format                  text,
            size_bytes              bigint,
            created_at              timestamptz NOT NULL,
            event_id                bigint NOT NULL,
            call_timestamp          timestamptz,
            call_event_id           bigint,
            call_phone_number       text,
            call_duration           integer,
            recording_timestamp     timestamptz,
            recording_event_id      bigint,
            recording_phone_number  text,
            recording_duration      integer,
            UNIQUE (org_id, call_id, url)
        );
        CREATE INDEX mightycall_recordings_org_created ON mightycall_recordings (org_id, created_at DESC);

        CREATE TABLE mightycall_reports (
            id               uuid PRIMARY KEY,
            org_id           uuid NOT NULL,
            report_id        text NOT NULL,
            report_type      text NOT NULL,
            report_date      date NOT NULL,
            phone_number     text,
            phone_number_id  uuid,
            metric_type      text NOT NULL,
            value            numeric NOT NULL,
            unit             text,
            reported_at      timestamptz,
            event_id         bigint NOT NULL,
            UNIQUE (org_id, report_id, metric_type)
        );
        CREATE INDEX mightycall_reports_org_date ON mightycall_reports (org_id, report_date DESC);

        -- How far each projection has read the log. Written in the same transaction as its rows.
        CREATE TABLE projection_checkpoints (
            name            text PRIMARY KEY,
            version         integer NOT NULL,
            position        bigint NOT NULL CHECK (position >= 0),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            error           text,
            error_position  bigint
        );
        INSERT INTO projection_checkpoints (name, version, position) VALUES
            ('calls', 1, 0), ('sms', 1, 0), ('recordings', 1, 0), ('reports', 1, 0);
    """)


def _backfill_e164() -> None:
    # Numbers imported before this step get their E.164 form here; new imports compute it themselves.
    from service.core.phones import to_e164

    region = os.environ.get("MIGHTYCALL_DEFAULT_REGION") or "US"
    conn = op.get_bind()
    rows = conn.exec_driver_sql(
        "SELECT id, org_id, phone_number FROM phone_numbers ORDER BY created_at, id"
    ).fetchall()
    seen: set[tuple[object, str]] = set()
    for row_id, org_id, raw in rows:
        e164 = to_e164(raw, region)
        if e164 is None or (org_id, e164) in seen:
            continue  # an earlier spelling of the same number keeps the match
        seen.add((org_id, e164))
        conn.exec_driver_sql(
            "UPDATE phone_numbers SET e164 = %(e164)s WHERE id = %(id)s", {"e164": e164, "id": row_id}
        )


def downgrade() -> None:
    op.execute("""
        DROP TABLE projection_checkpoints, mightycall_reports, mightycall_recordings,
                   mightycall_sms_messages, calls;
        DROP INDEX phone_numbers_org_e164;
        ALTER TABLE phone_numbers DROP COLUMN e164;
    """)
