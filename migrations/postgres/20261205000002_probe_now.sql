-- Probe now (issue 16): operator tokens, and operators' requests to probe an endpoint.
--
-- A token is an agent's (it reports) or an operator's (it asks for probes): `kind`.
-- Every token issued before is an agent's.
ALTER TABLE agent_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';

-- When an operator last asked for the endpoint to be probed now: the per-endpoint rate
-- limit, kept in the database so that it holds across API replicas. Not indexed (read
-- and written by endpoint id only), so setting it stays a heap-only update.
ALTER TABLE endpoints ADD COLUMN probe_requested_at TIMESTAMPTZ;
