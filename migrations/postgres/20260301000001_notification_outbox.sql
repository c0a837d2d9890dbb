-- The notification outbox (PostgreSQL). The first migration's `notifications` table holds
-- one row per claimed (certificate, owner, threshold); this adds what delivery needs.
--
-- A row is pending until sent_at or resolved_at is set. Schedulers lease pending rows
-- (lease_owner, lease_until) so that one owner's digest is sent by one of them; a failed
-- attempt sets last_error and next_attempt_at (back-off). resolved_at ends a row without
-- (more) mail: the certificate was rotated or stopped being served, or was muted.
ALTER TABLE notifications ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE notifications ADD COLUMN resolved_at TIMESTAMPTZ;
ALTER TABLE notifications ADD COLUMN resolution TEXT;

CREATE INDEX notifications_pending ON notifications (owner)
    WHERE sent_at IS NULL AND resolved_at IS NULL;
CREATE INDEX notifications_open ON notifications (sha256)
    WHERE resolved_at IS NULL;

-- Quiet certificates: no notification while muted_until is in the future.
CREATE TABLE notification_mutes (
    sha256      TEXT PRIMARY KEY,
    reason      TEXT        NOT NULL,
    muted_until TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
