-- What the web view and the JSON API need to answer from indexes (mirrors
-- migrations/postgres/20260401000001_web_lookups.sql; see docs/api.md).

ALTER TABLE certificates ADD COLUMN sha1 TEXT;
CREATE INDEX certificates_sha1 ON certificates (sha1) WHERE sha1 IS NOT NULL;
CREATE INDEX certificates_issuer ON certificates (lower(issuer), not_after, sha256);

ALTER TABLE endpoints ADD COLUMN leaf_sha256 TEXT;
ALTER TABLE endpoints ADD COLUMN leaf_not_after INTEGER;
UPDATE endpoints SET
    leaf_sha256 = (SELECT o.leaf_sha256 FROM observations o
                   WHERE o.id = endpoints.observation_id),
    leaf_not_after = (SELECT c.not_after FROM observations o
                      JOIN certificates c ON c.sha256 = o.leaf_sha256
                      WHERE o.id = endpoints.observation_id)
    WHERE observation_id IS NOT NULL;
CREATE INDEX endpoints_leaf_expiry ON endpoints (leaf_not_after, leaf_sha256)
    WHERE retired_at IS NULL AND leaf_not_after IS NOT NULL;
CREATE INDEX endpoints_owner ON endpoints (owner, id) WHERE retired_at IS NULL;
CREATE INDEX endpoints_env ON endpoints (env, id) WHERE retired_at IS NULL;
CREATE INDEX endpoints_app_id ON endpoints (app, id) WHERE retired_at IS NULL;

-- Findings are a JSON array of strings; instr() on the quoted name is the predicate the
-- queries repeat.
CREATE INDEX observations_finding_expired ON observations (id) WHERE instr(findings, '"expired"') > 0;
CREATE INDEX observations_finding_not_yet_valid ON observations (id) WHERE instr(findings, '"not_yet_valid"') > 0;
CREATE INDEX observations_finding_expires_soon ON observations (id) WHERE instr(findings, '"expires_soon"') > 0;
CREATE INDEX observations_finding_self_signed ON observations (id) WHERE instr(findings, '"self_signed"') > 0;
CREATE INDEX observations_finding_untrusted ON observations (id) WHERE instr(findings, '"untrusted"') > 0;
CREATE INDEX observations_finding_incomplete_chain ON observations (id) WHERE instr(findings, '"incomplete_chain"') > 0;
CREATE INDEX observations_finding_wrong_order ON observations (id) WHERE instr(findings, '"wrong_order"') > 0;
CREATE INDEX observations_finding_hostname_mismatch ON observations (id) WHERE instr(findings, '"hostname_mismatch"') > 0;
CREATE INDEX observations_finding_weak_key ON observations (id) WHERE instr(findings, '"weak_key"') > 0;
CREATE INDEX observations_finding_sha1_signature ON observations (id) WHERE instr(findings, '"sha1_signature"') > 0;
CREATE INDEX observations_finding_legacy_protocol ON observations (id) WHERE instr(findings, '"legacy_protocol"') > 0;
CREATE INDEX observations_finding_chain_expires_first ON observations (id) WHERE instr(findings, '"chain_expires_first"') > 0;
CREATE INDEX observations_mtls_required ON observations (id)
    WHERE mtls_requested = 1 AND mtls_required = 1;
CREATE INDEX observations_mtls_optional ON observations (id)
    WHERE mtls_requested = 1 AND mtls_required IS NOT 1;

CREATE INDEX notifications_failed ON notifications (id)
    WHERE sent_at IS NULL AND resolved_at IS NULL AND attempts > 0;
CREATE INDEX notifications_owner ON notifications (owner, id);
