-- Rotations (issue 18): each time a probe finds an endpoint serving another leaf than
-- the one it served before. `old_seen_at` is the last probe that saw the old leaf there
-- (its observation's last_seen), `new_seen_at` the probe that saw the new one; their
-- difference, `latency_ms`, is how long the service took to see the rotation (the
-- discovery latency in /metrics and on the dashboard). Times are Unix seconds.
CREATE TABLE rotations (
    id          INTEGER PRIMARY KEY,
    endpoint_id INTEGER NOT NULL,
    old_sha256  TEXT    NOT NULL,
    new_sha256  TEXT    NOT NULL,
    old_seen_at INTEGER NOT NULL,
    new_seen_at INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL
);
CREATE INDEX rotations_seen ON rotations (new_seen_at);
