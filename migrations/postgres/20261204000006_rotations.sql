-- Rotations (issue 18): each time a probe finds an endpoint serving another leaf than
-- the one it served before. `old_seen_at` is the last probe that saw the old leaf there
-- (its observation's last_seen), `new_seen_at` the probe that saw the new one; their
-- difference, `latency_ms`, is how long the service took to see the rotation (the
-- discovery latency in /metrics and on the dashboard). Written by the transaction that
-- records the probe; nothing else reads it on a hot path.
CREATE TABLE rotations (
    id          BIGSERIAL PRIMARY KEY,
    endpoint_id BIGINT      NOT NULL,
    old_sha256  TEXT COLLATE "C" NOT NULL,
    new_sha256  TEXT COLLATE "C" NOT NULL,
    old_seen_at TIMESTAMPTZ NOT NULL,
    new_seen_at TIMESTAMPTZ NOT NULL,
    latency_ms  BIGINT      NOT NULL
);
CREATE INDEX rotations_seen ON rotations (new_seen_at);
