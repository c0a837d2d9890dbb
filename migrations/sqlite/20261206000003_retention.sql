-- Retention (issue 19): what the scheduler's pruning reads, and the totals it keeps.
--
-- Each prune batch takes the oldest rows of one kind by one of these indexes: certificates
-- by when they were last served, observations by when they were last seen, retired
-- endpoints by when they retired, hosts and osquery nodes by when they last reported.
CREATE INDEX certificates_last_seen ON certificates (last_seen);
CREATE INDEX observations_last_seen ON observations (last_seen);
CREATE INDEX endpoints_retired ON endpoints (retired_at) WHERE retired_at IS NOT NULL;
CREATE INDEX hosts_last_seen ON hosts (last_seen);
CREATE INDEX osquery_hosts_updated ON osquery_hosts (updated_at);

-- What a pruned row leaves behind, found by the key it hangs on: a certificate's names,
-- a host's retired endpoints (its active ones: endpoints_host) and its claims.
CREATE INDEX certificate_names_sha256 ON certificate_names (sha256);
CREATE INDEX endpoints_host_retired ON endpoints (host_id) WHERE retired_at IS NOT NULL;
CREATE INDEX endpoint_claims_host ON endpoint_claims (host_id);

-- Rows pruned since the database was created, by kind (certificates, observations,
-- endpoints, hosts): added to in the transaction of each batch, so that every API
-- replica's /metrics tells the same totals whichever process pruned.
CREATE TABLE retention_totals (
    kind   TEXT   PRIMARY KEY,
    pruned INTEGER NOT NULL
);
