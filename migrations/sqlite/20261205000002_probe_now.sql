-- Probe now (issue 16): operator tokens, and operators' requests to probe an endpoint.
--
-- A token is an agent's (it reports) or an operator's (it asks for probes): `kind`.
-- Every token issued before is an agent's.
ALTER TABLE agent_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';

-- When an operator last asked for the endpoint to be probed now (Unix seconds): the
-- per-endpoint rate limit.
ALTER TABLE endpoints ADD COLUMN probe_requested_at INTEGER;
