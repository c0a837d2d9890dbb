-- Hostile agents (issue 13).
--
-- A token may be bound to one host: its reports must name that host (the machine id, or
-- `hostname:<name>` for hosts without one, as hosts.host_key). NULL: any host (a token
-- an operator hands to a group of agents).
ALTER TABLE agent_tokens ADD COLUMN host_key TEXT;

-- Claims on an endpoint by a host other than the one that reported it within the claim
-- window: kept, shown and counted, never applied, until the first host stops reporting
-- the endpoint (the next claim after the window takes it over) or an operator settles it.
CREATE TABLE endpoint_claims (
    endpoint_id BIGINT NOT NULL,
    host_id     BIGINT NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (endpoint_id, host_id)
);

-- Tokens by agent (revocation), and at most one active enrolled credential per host: an
-- enrolled agent is named `enrolled:<host key>`; a second enrollment of the same host is
-- refused until an operator revokes the first (`certfleet token revoke enrolled:<key>`).
CREATE INDEX agent_tokens_agent ON agent_tokens (agent);
CREATE UNIQUE INDEX agent_tokens_enrolled ON agent_tokens (agent)
    WHERE revoked_at IS NULL AND agent LIKE 'enrolled:%';

-- A host's endpoints, for the per-host bound that every report is checked against.
CREATE INDEX endpoints_host ON endpoints (host_id) WHERE retired_at IS NULL;
