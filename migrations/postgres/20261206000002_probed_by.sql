-- Agent-side probing (issue 17): endpoints the host's own agent probes (`agent.probe_local`).
--
-- `probed_by` is the id of the host whose agent probes the endpoint; probers never lease
-- such an endpoint. A loopback listener is stored under its host (address
-- `127.0.0.1%<host id>`), so two hosts' loopbacks never share a row. Partial index: only
-- agent-probed endpoints are in it, so the per-report "which of this host's endpoints are
-- agent-probed" step is one small index range, and other endpoints pay nothing.
ALTER TABLE endpoints ADD COLUMN probed_by BIGINT;
CREATE INDEX endpoints_probed_by ON endpoints (probed_by) WHERE probed_by IS NOT NULL;
