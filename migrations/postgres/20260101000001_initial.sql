-- certfleet's first schema (PostgreSQL). Never edit a landed migration: append a new one.
--
-- The tables written in batches (endpoints, certificate_names, observations,
-- observation_chain) have no foreign keys: a per-row referential check costs about 40 %
-- of a 10,000-row upsert, and the store, the only writer, writes parents before children
-- in the same transaction. Rows are never deleted, only retired.

-- Agent tokens: only a SHA-256 of the token is kept. `lookup` is the token's public
-- prefix, so authentication is one index probe followed by a constant-time comparison.
CREATE TABLE agent_tokens (
    id           BIGSERIAL PRIMARY KEY,
    agent        TEXT        NOT NULL,
    lookup       TEXT COLLATE "C" NOT NULL UNIQUE,
    token_sha256 BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ
);

-- Hosts, keyed by machine id (or `hostname:<name>` when an agent has none).
CREATE TABLE hosts (
    id            BIGSERIAL PRIMARY KEY,
    host_key      TEXT COLLATE "C" NOT NULL UNIQUE,
    hostname      TEXT        NOT NULL,
    machine_id    TEXT        NOT NULL,
    agent         TEXT        NOT NULL,
    agent_version TEXT        NOT NULL,
    addresses     JSONB       NOT NULL,
    tags          JSONB       NOT NULL,
    collected_at  TIMESTAMPTZ NOT NULL,
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL
);

-- Certificates, keyed by the SHA-256 of their DER.
CREATE TABLE certificates (
    sha256              TEXT COLLATE "C" PRIMARY KEY,
    serial              TEXT COLLATE "C" NOT NULL,
    subject             TEXT        NOT NULL,
    issuer              TEXT        NOT NULL,
    not_before          TIMESTAMPTZ NOT NULL,
    not_after           TIMESTAMPTZ NOT NULL,
    sans                JSONB       NOT NULL,
    key_type            TEXT        NOT NULL,
    key_bits            INTEGER     NOT NULL,
    key_curve           TEXT,
    signature_algorithm TEXT        NOT NULL,
    is_ca               BOOLEAN     NOT NULL,
    self_signed         BOOLEAN     NOT NULL,
    pem                 TEXT,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL
);
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_not_after ON certificates (not_after);

-- The names of each certificate (SANs and subject CN), lower-cased, for hostname lookups.
-- A wildcard name is stored as written (`*.example.com`).
CREATE TABLE certificate_names (
    name   TEXT COLLATE "C" NOT NULL,
    sha256 TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (name, sha256)
);

-- Endpoints to probe, keyed by (address, port, sni); sni is '' when none is sent.
-- A lease sets next_probe_at to the lease deadline, so "due" is one index range and an
-- expired lease is simply due again. Half of each page is left free (fillfactor) so that the
-- hourly last_seen refresh can be a heap-only update; last_seen is deliberately not indexed (the
-- daily retirement pass scans).
CREATE TABLE endpoints (
    id             BIGSERIAL PRIMARY KEY,
    address        TEXT COLLATE "C" NOT NULL,
    port           INTEGER     NOT NULL,
    sni            TEXT COLLATE "C" NOT NULL DEFAULT '',
    host_id        BIGINT,
    process        TEXT,
    container      TEXT,
    netns          BIGINT,
    app            TEXT,
    env            TEXT,
    owner          TEXT,
    first_seen     TIMESTAMPTZ NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL,
    retired_at     TIMESTAMPTZ,
    next_probe_at  TIMESTAMPTZ NOT NULL,
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ,
    failures       INTEGER     NOT NULL DEFAULT 0,
    last_status    TEXT,
    last_error     TEXT,
    last_probed_at TIMESTAMPTZ,
    observation_id BIGINT,
    UNIQUE (address, port, sni)
) WITH (fillfactor = 50);
CREATE INDEX endpoints_due ON endpoints (next_probe_at) WHERE retired_at IS NULL;
CREATE INDEX endpoints_app ON endpoints (app);
CREATE INDEX endpoints_observation ON endpoints (observation_id);

-- What an endpoint served: one row per distinct (chain, TLS parameters, mTLS policy,
-- findings); identical probes only move last_seen.
CREATE TABLE observations (
    id             BIGSERIAL PRIMARY KEY,
    endpoint_id    BIGINT      NOT NULL,
    fingerprint    TEXT COLLATE "C" NOT NULL,
    status         TEXT        NOT NULL,
    leaf_sha256    TEXT,
    tls_version    TEXT,
    cipher         TEXT,
    alpn           TEXT,
    tls_group      TEXT,
    legacy         BOOLEAN     NOT NULL,
    mtls_requested BOOLEAN     NOT NULL,
    mtls_required  BOOLEAN,
    ca_names       JSONB       NOT NULL,
    findings       JSONB       NOT NULL,
    first_seen     TIMESTAMPTZ NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL,
    UNIQUE (endpoint_id, fingerprint)
);

-- The chain of an observation, leaf at position 0.
CREATE TABLE observation_chain (
    observation_id BIGINT  NOT NULL,
    position       INTEGER NOT NULL,
    sha256         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (observation_id, position)
);
CREATE INDEX observation_chain_certificate ON observation_chain (sha256);

-- Daily mTLS adoption, per grouping (`app` or `env`) and group key ('' for untagged).
CREATE TABLE mtls_snapshots (
    day       DATE    NOT NULL,
    grouping  TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    required  BIGINT  NOT NULL,
    optional  BIGINT  NOT NULL,
    absent    BIGINT  NOT NULL,
    PRIMARY KEY (day, grouping, group_key)
);

-- Notification outbox: one row per (certificate, owner, threshold), so that a threshold
-- is marked once in the database and two schedulers never send the same email twice.
CREATE TABLE notifications (
    id          BIGSERIAL PRIMARY KEY,
    sha256      TEXT        NOT NULL REFERENCES certificates (sha256),
    owner       TEXT        NOT NULL,
    threshold   TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    last_error  TEXT,
    UNIQUE (sha256, owner, threshold)
);
CREATE INDEX notifications_unsent ON notifications (created_at) WHERE sent_at IS NULL;
