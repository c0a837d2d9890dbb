-- Network zones (issue 17): each endpoint belongs to one zone, and a prober leases only
-- the endpoints of the zones it serves. See the PostgreSQL migration for the rules.
ALTER TABLE endpoints ADD COLUMN zone TEXT NOT NULL DEFAULT 'default';

CREATE INDEX endpoints_zone_due ON endpoints (zone, next_probe_at) WHERE retired_at IS NULL;

-- The probers that announce themselves; times are Unix seconds, zones a JSON array.
CREATE TABLE probers (
    name              TEXT PRIMARY KEY,
    zones             TEXT    NOT NULL,
    version           TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    live_until        INTEGER NOT NULL,
    probes_per_minute INTEGER NOT NULL DEFAULT 0
);
