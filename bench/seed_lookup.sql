-- Seeds a migrated certfleet PostgreSQL database with a fleet of fleet size for
-- bench/lookup.sh: 1,000,000 certificates (2,000,000 names), 100,000 hosts,
-- 3,000,000 active endpoints on 1,000,000 sockets (each probed without a name and under
-- two names, about what the demo's sockets have), each with one current observation (leaf
-- chain), 7,000 apps, 4 envs, 700 owners, 90 days of mTLS snapshots. Deterministic:
-- certificate c is served by endpoints c, c + 1,000,000 and c + 2,000,000.
--
-- Shapes follow the store's rows: SHA-256 and SHA-1 are 64/40 lowercase hex, serials
-- lowercase hex without leading zeros, times spread so that about 7 % of leaves are
-- expired, 7 % expire within 30 days. Only PostgreSQL built-ins are used (sha256()).
\set ON_ERROR_STOP on
SET synchronous_commit = off;
-- One transaction: now() is the same in every statement, so each endpoint's copy of its
-- leaf's expiry equals the certificate's.
BEGIN;

INSERT INTO hosts (id, host_key, hostname, machine_id, agent, agent_version, addresses, tags,
                   collected_at, first_seen, last_seen)
SELECT h, 'machine-' || h, 'host-' || h, 'machine-' || h, 'bench', '0.1.0',
       jsonb_build_array('10.' || (h >> 16) || '.' || ((h >> 8) & 255) || '.' || (h & 255)),
       jsonb_build_object('app', 'app' || (h % 7000), 'env', (ARRAY['prod','staging','dev','test'])[1 + h % 4]),
       now(), now() - interval '30 days', now()
FROM generate_series(1, 100000) AS h;
SELECT setval('hosts_id_seq', 100000);

INSERT INTO certificates (sha256, serial, subject, issuer, not_before, not_after, sans, key_type,
                          key_bits, key_curve, signature_algorithm, is_ca, self_signed, pem,
                          first_seen, last_seen, sha1)
SELECT encode(sha256(('cert' || c)::bytea), 'hex'),
       to_hex(((c::bigint * 2654435761) % 1099511627776) + 1099511627776),
       'CN=svc' || c || '.example.com,O=Example',
       'CN=Example Issuing CA ' || (c % 20) || ',O=Example',
       now() - interval '60 days',
       now() + make_interval(days => (c % 400) - 30, hours => c % 24),
       jsonb_build_array('svc' || c || '.example.com', '*.svc' || c || '.example.com'),
       'ecdsa', 256, 'P-256', 'ecdsa-with-SHA256', false, false, NULL,
       now() - interval '30 days', now(),
       substr(encode(sha256(('sha1-' || c)::bytea), 'hex'), 1, 40)
FROM generate_series(1, 1000000) AS c;

INSERT INTO certificate_names (name, sha256)
SELECT n.name, encode(sha256(('cert' || c)::bytea), 'hex')
FROM generate_series(1, 1000000) AS c,
     LATERAL (VALUES ('svc' || c || '.example.com'), ('*.svc' || c || '.example.com')) AS n(name);

-- Endpoint e serves certificate c = 1 + (e - 1) % 1,000,000 through observation e.
INSERT INTO observations (id, endpoint_id, fingerprint, status, leaf_sha256, tls_version, cipher,
                          alpn, tls_group, legacy, mtls_requested, mtls_required, ca_names,
                          findings, first_seen, last_seen)
SELECT e, e, md5(e::text), 'ok', encode(sha256(('cert' || c)::bytea), 'hex'),
       CASE WHEN e % 500 = 2 THEN 'TLSv1.1' ELSE 'TLSv1.3' END,
       'TLS13_AES_128_GCM_SHA256', NULL, 'X25519', e % 500 = 2,
       e % 10 < 3, CASE WHEN e % 10 < 2 THEN true WHEN e % 10 = 2 THEN false END,
       '[]'::jsonb,
       to_jsonb(array_remove(ARRAY[
           CASE WHEN (c % 400) - 30 < 0 THEN 'expired' END,
           CASE WHEN (c % 400) - 30 BETWEEN 0 AND 29 THEN 'expires_soon' END,
           CASE WHEN e % 100 = 3 THEN 'untrusted' END,
           CASE WHEN e % 500 = 2 THEN 'legacy_protocol' END,
           CASE WHEN e % 1000 = 0 THEN 'weak_key' END,
           CASE WHEN e % 2000 = 1 THEN 'sha1_signature' END], NULL)),
       now() - interval '30 days', now()
FROM generate_series(1, 3000000) AS e, LATERAL (SELECT 1 + (e - 1) % 1000000 AS c) AS k;
SELECT setval('observations_id_seq', 3000000);

INSERT INTO observation_chain (observation_id, position, sha256)
SELECT e, 0, encode(sha256(('cert' || (1 + (e - 1) % 1000000))::bytea), 'hex')
FROM generate_series(1, 3000000) AS e;

INSERT INTO endpoints (id, address, port, sni, host_id, process, app, env, owner, first_seen,
                       last_seen, next_probe_at, failures, last_status, last_probed_at,
                       observation_id, leaf_sha256, leaf_not_after)
SELECT e, '10.' || (h >> 16) || '.' || ((h >> 8) & 255) || '.' || (h & 255), 1000 + sock / 100000,
       (ARRAY['', 'svc' || c || '.example.com', 'host' || h || '.example.net'])[1 + (e - 1) % 3],
       h, 'nginx', 'app' || (h % 7000), (ARRAY['prod','staging','dev','test'])[1 + h % 4],
       'team' || (h % 700) || '@example.com',
       now() - interval '30 days', now(), now() + make_interval(secs => e % 86400),
       CASE WHEN e % 200 = 0 THEN 2 ELSE 0 END, 'ok', now() - interval '1 hour', e,
       encode(sha256(('cert' || c)::bytea), 'hex'),
       now() + make_interval(days => (c % 400) - 30, hours => c % 24)
FROM generate_series(1, 3000000) AS e,
     LATERAL (SELECT (e - 1) / 3 AS sock) AS s,
     LATERAL (SELECT 1 + sock % 100000 AS h, 1 + (e - 1) % 1000000 AS c) AS k;
SELECT setval('endpoints_id_seq', 3000000);

INSERT INTO mtls_snapshots (day, grouping, group_key, required, optional, absent)
SELECT current_date - d, g.grouping, g.key, 600000 - d * 2000, 300000, 2100000 + d * 2000
FROM generate_series(0, 89) AS d,
     (VALUES ('app', 'all'), ('env', 'all')) AS g(grouping, key);

COMMIT;
VACUUM ANALYZE;
