-- certfleet's first schema (SQLite). Never edit a landed migration: append a new one.
-- Times are INTEGER Unix seconds (UTC), so that comparisons and ORDER BY are numeric;
-- JSON is TEXT; booleans are INTEGER 0/1. Otherwise it mirrors migrations/postgres,
-- including its lack of foreign keys on the batch-written tables.

CREATE TABLE agent_tokens (
    id           INTEGER PRIMARY KEY,
    agent        TEXT    NOT NULL,
    lookup       TEXT    NOT NULL UNIQUE,
    token_sha256 BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE hosts (
    id            INTEGER PRIMARY KEY,
    host_key      TEXT    NOT NULL UNIQUE,
    hostname      TEXT    NOT NULL,
    machine_id    TEXT    NOT NULL,
    agent         TEXT    NOT NULL,
    agent_version TEXT    NOT NULL,
    addresses     TEXT    NOT NULL,
    tags          TEXT    NOT NULL,
    collected_at  INTEGER NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL
);

CREATE TABLE certificates (
    sha256              TEXT PRIMARY KEY,
    serial              TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    issuer              TEXT    NOT NULL,
    not_before          INTEGER NOT NULL,
    not_after           INTEGER NOT NULL,
    sans                TEXT    NOT NULL,
    key_type            TEXT    NOT NULL,
    key_bits            INTEGER NOT NULL,
    key_curve           TEXT,
    signature_algorithm TEXT    NOT NULL,
    is_ca               INTEGER NOT NULL,
    self_signed         INTEGER NOT NULL,
    pem                 TEXT,
    first_seen          INTEGER NOT NULL,
    last_seen           INTEGER NOT NULL
);
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_not_after ON certificates (not_after);

CREATE TABLE certificate_names (
    name   TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (name, sha256)
) WITHOUT ROWID;

CREATE TABLE endpoints (
    id             INTEGER PRIMARY KEY,
    address        TEXT    NOT NULL,
    port           INTEGER NOT NULL,
    sni            TEXT    NOT NULL DEFAULT '',
    host_id        INTEGER,
    process        TEXT,
    container      TEXT,
    netns          INTEGER,
    app            TEXT,
    env            TEXT,
    owner          TEXT,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    retired_at     INTEGER,
    next_probe_at  INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until    INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0,
    last_status    TEXT,
    last_error     TEXT,
    last_probed_at INTEGER,
    observation_id INTEGER,
    UNIQUE (address, port, sni)
);
CREATE INDEX endpoints_due ON endpoints (next_probe_at) WHERE retired_at IS NULL;
CREATE INDEX endpoints_app ON endpoints (app);
CREATE INDEX endpoints_observation ON endpoints (observation_id);

CREATE TABLE observations (
    id             INTEGER PRIMARY KEY,
    endpoint_id    INTEGER NOT NULL,
    fingerprint    TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    leaf_sha256    TEXT,
    tls_version    TEXT,
    cipher         TEXT,
    alpn           TEXT,
    tls_group      TEXT,
    legacy         INTEGER NOT NULL,
    mtls_requested INTEGER NOT NULL,
    mtls_required  INTEGER,
    ca_names       TEXT    NOT NULL,
    findings       TEXT    NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    UNIQUE (endpoint_id, fingerprint)
);

CREATE TABLE observation_chain (
    observation_id INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    sha256         TEXT    NOT NULL,
    PRIMARY KEY (observation_id, position)
) WITHOUT ROWID;
CREATE INDEX observation_chain_certificate ON observation_chain (sha256);

CREATE TABLE mtls_snapshots (
    day       TEXT    NOT NULL,
    grouping  TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    required  INTEGER NOT NULL,
    optional  INTEGER NOT NULL,
    absent    INTEGER NOT NULL,
    PRIMARY KEY (day, grouping, group_key)
) WITHOUT ROWID;

CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT    NOT NULL REFERENCES certificates (sha256),
    owner       TEXT    NOT NULL,
    threshold   TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    UNIQUE (sha256, owner, threshold)
);
CREATE INDEX notifications_unsent ON notifications (created_at) WHERE sent_at IS NULL;
