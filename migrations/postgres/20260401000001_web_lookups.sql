-- What the web view and the JSON API need to answer from indexes at fleet size
-- (1,000,000 certificates, 3,000,000 endpoints): see docs/api.md.

-- SHA-1 fingerprints, for lookups by the fingerprint older tools print. Filled from the
-- PEM when a probe records the certificate; rows recorded before this migration get
-- theirs the next time they are seen.
ALTER TABLE certificates ADD COLUMN sha1 TEXT;
CREATE INDEX certificates_sha1 ON certificates (sha1) WHERE sha1 IS NOT NULL;
-- Lookups by issuer, newest expiry first, a page at a time.
CREATE INDEX certificates_issuer ON certificates (lower(issuer), not_after, sha256);

-- The leaf an endpoint serves now (copied from its current observation when that
-- changes), so that "in use and expiring" and "expired but still served" are one index
-- range over active endpoints instead of a walk over every certificate ever seen.
ALTER TABLE endpoints ADD COLUMN leaf_sha256 TEXT;
ALTER TABLE endpoints ADD COLUMN leaf_not_after TIMESTAMPTZ;
UPDATE endpoints e SET leaf_sha256 = o.leaf_sha256, leaf_not_after = c.not_after
    FROM observations o JOIN certificates c ON c.sha256 = o.leaf_sha256
    WHERE o.id = e.observation_id;
CREATE INDEX endpoints_leaf_expiry ON endpoints (leaf_not_after, leaf_sha256)
    WHERE retired_at IS NULL AND leaf_not_after IS NOT NULL;
-- Owner and env pages, in id order.
CREATE INDEX endpoints_owner ON endpoints (owner, id) WHERE retired_at IS NULL;
CREATE INDEX endpoints_env ON endpoints (env, id) WHERE retired_at IS NULL;
CREATE INDEX endpoints_app_id ON endpoints (app, id) WHERE retired_at IS NULL;

-- Endpoints by finding and by mTLS state are listed through their current observation,
-- in observation id order: one small partial index per finding (the literal in each
-- predicate is what the queries repeat, so the planner can use it).
CREATE INDEX observations_finding_expired ON observations (id) WHERE findings ? 'expired';
CREATE INDEX observations_finding_not_yet_valid ON observations (id) WHERE findings ? 'not_yet_valid';
CREATE INDEX observations_finding_expires_soon ON observations (id) WHERE findings ? 'expires_soon';
CREATE INDEX observations_finding_self_signed ON observations (id) WHERE findings ? 'self_signed';
CREATE INDEX observations_finding_untrusted ON observations (id) WHERE findings ? 'untrusted';
CREATE INDEX observations_finding_incomplete_chain ON observations (id) WHERE findings ? 'incomplete_chain';
CREATE INDEX observations_finding_wrong_order ON observations (id) WHERE findings ? 'wrong_order';
CREATE INDEX observations_finding_hostname_mismatch ON observations (id) WHERE findings ? 'hostname_mismatch';
CREATE INDEX observations_finding_weak_key ON observations (id) WHERE findings ? 'weak_key';
CREATE INDEX observations_finding_sha1_signature ON observations (id) WHERE findings ? 'sha1_signature';
CREATE INDEX observations_finding_legacy_protocol ON observations (id) WHERE findings ? 'legacy_protocol';
CREATE INDEX observations_finding_chain_expires_first ON observations (id) WHERE findings ? 'chain_expires_first';
CREATE INDEX observations_mtls_required ON observations (id)
    WHERE mtls_requested AND mtls_required IS TRUE;
CREATE INDEX observations_mtls_optional ON observations (id)
    WHERE mtls_requested AND mtls_required IS NOT TRUE;

-- Failed notifications (pending with at least one failed attempt), and by owner.
CREATE INDEX notifications_failed ON notifications (id)
    WHERE sent_at IS NULL AND resolved_at IS NULL AND attempts > 0;
CREATE INDEX notifications_owner ON notifications (owner, id);
