"""The immutable event log, its head, rejected deliveries and the reference data.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE organizations (
            id          uuid PRIMARY KEY,
            name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE integrations (
            id          uuid PRIMARY KEY,
            org_id      uuid NOT NULL REFERENCES organizations (id),
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX integrations_org_id ON integrations (org_id);

        CREATE TABLE phone_numbers (
            id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id        uuid NOT NULL REFERENCES organizations (id),
            phone_number  text NOT NULL CHECK (length(phone_number) BETWEEN 1 AND 64),
            created_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (org_id, phone_number)
        );
    """)

    # `id` is no sequence: eventlog.append assigns it while holding the lock on event_log_head, which
    # makes positions gapless and ascending in commit order (see service/eventlog/append.py).
    op.execute("""
        CREATE TABLE event_log (
            id            bigint PRIMARY KEY CHECK (id > 0),
            received_at   timestamptz NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('calls', 'sms', 'recordings', 'reports')),
            event_type    text NOT NULL,
            org_id        uuid NOT NULL REFERENCES organizations (id),
            external_id   text NOT NULL,
            content_type  text,
            body          bytea NOT NULL,
            body_sha256   bytea NOT NULL CHECK (length(body_sha256) = 32),
            prev_hash     bytea NOT NULL CHECK (length(prev_hash) = 32),
            hash          bytea NOT NULL CHECK (length(hash) = 32),
            -- An exact redelivery (same endpoint, same bytes) is the same event.
            CONSTRAINT event_log_delivery_once UNIQUE (kind, body_sha256)
        );
        CREATE INDEX event_log_org_external ON event_log (org_id, kind, external_id);

        CREATE TABLE event_log_head (
            singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            position   bigint NOT NULL CHECK (position >= 0),
            hash       bytea NOT NULL CHECK (length(hash) = 32)
        );
        INSERT INTO event_log_head (position, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
    """)

    # Append-only is enforced by the database, not by convention. ENABLE ALWAYS keeps the triggers
    # firing under session_replication_role = replica, the usual way to switch triggers off.
    op.execute("""
        CREATE FUNCTION event_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$;

        CREATE TRIGGER event_log_no_update_or_delete BEFORE UPDATE OR DELETE ON event_log
            FOR EACH ROW EXECUTE FUNCTION event_log_refuse_change();
        CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
        ALTER TABLE event_log ENABLE ALWAYS TRIGGER event_log_no_update_or_delete;
        ALTER TABLE event_log ENABLE ALWAYS TRIGGER event_log_no_truncate;

        -- The head moves forward only, and never goes away.
        CREATE FUNCTION event_log_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' OR NEW.position < OLD.position THEN
                RAISE EXCEPTION 'event_log_head only moves forward: % refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER event_log_head_forward_only BEFORE UPDATE OR DELETE ON event_log_head
            FOR EACH ROW EXECUTE FUNCTION event_log_head_forward_only();
        CREATE TRIGGER event_log_head_no_truncate BEFORE TRUNCATE ON event_log_head
            FOR EACH STATEMENT EXECUTE FUNCTION event_log_refuse_change();
        ALTER TABLE event_log_head ENABLE ALWAYS TRIGGER event_log_head_forward_only;
        ALTER TABLE event_log_head ENABLE ALWAYS TRIGGER event_log_head_no_truncate;

        REVOKE UPDATE, DELETE, TRUNCATE ON event_log FROM PUBLIC;
    """)

    op.execute("""
        CREATE TABLE rejected_deliveries (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            received_at   timestamptz NOT NULL,
            kind          text NOT NULL,
            reason        text NOT NULL,
            details       text NOT NULL,
            content_type  text,
            body_size     bigint,
            body          bytea  -- NULL when the body was over the size limit
        );
        CREATE INDEX rejected_deliveries_received_at ON rejected_deliveries (received_at);
    """)


def downgrade() -> None:
    # Dropping the log would destroy the source of truth; that is never a migration step.
    raise RuntimeError("0001 creates the event log and cannot be downgraded")
