-- Network zones (issue 17): each endpoint belongs to one zone, and a prober leases only
-- the endpoints of the zones it serves.
--
-- `zone` is assigned when the endpoint is written (report, static target, named endpoint):
-- the host's tag `zone`, else the first `[[zones]]` whose CIDRs hold the address, else
-- 'default'. Endpoints that existed before have no zone yet: 'default' until their next
-- report.
ALTER TABLE endpoints ADD COLUMN zone TEXT COLLATE "C" NOT NULL DEFAULT 'default';

-- A prober serving some zones takes one index range per zone. The plain due index stays:
-- a prober serving every zone (the default) still takes one range of it, and the other
-- readers of "due" (the queue counts) keep using it.
CREATE INDEX endpoints_zone_due ON endpoints (zone, next_probe_at) WHERE retired_at IS NULL;

-- The probers that announce themselves (a heartbeat every `probe.heartbeat`): what they
-- serve, what they run, how fast they go. A prober is live until `live_until` (three
-- heartbeats after its last one); one that stopped stays listed, not live, for a day.
CREATE TABLE probers (
    name              TEXT PRIMARY KEY,
    zones             JSONB       NOT NULL,
    version           TEXT        NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    last_seen         TIMESTAMPTZ NOT NULL,
    live_until        TIMESTAMPTZ NOT NULL,
    -- Probes recorded over the last heartbeat interval, per minute (an integer keeps both
    -- backends' binds to the types they share; the API shows it per second).
    probes_per_minute BIGINT  NOT NULL DEFAULT 0
);
