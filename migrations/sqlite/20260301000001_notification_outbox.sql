-- The notification outbox (SQLite); mirrors migrations/postgres. Times are Unix seconds.
ALTER TABLE notifications ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN lease_until INTEGER;
ALTER TABLE notifications ADD COLUMN resolved_at INTEGER;
ALTER TABLE notifications ADD COLUMN resolution TEXT;

CREATE INDEX notifications_pending ON notifications (owner)
    WHERE sent_at IS NULL AND resolved_at IS NULL;
CREATE INDEX notifications_open ON notifications (sha256)
    WHERE resolved_at IS NULL;

CREATE TABLE notification_mutes (
    sha256      TEXT PRIMARY KEY,
    reason      TEXT    NOT NULL,
    muted_until INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
