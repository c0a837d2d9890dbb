//! Reading rows into records, once for both backends. Each backend says how it reads a
//! column of each kind ([`ReadRow`]); the shapes of the records live here, next to the
//! column lists the queries select.

use certfleet_model::{Finding, KeyInfo, MtlsEnforcement, MtlsPolicy, ProbeStatus, TlsParameters};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::records::{
    AgentName, CertificateRecord, Credential, EndpointId, EndpointRecord, ExpiringCertificate,
    Inventory, LeasedEndpoint, MtlsCounts, MtlsGroup, MtlsGrouping, NameSource, ObservationRecord,
    Seen, ServedAt, TokenKind, WorkloadTags,
};

/// Column access in one backend's types (times, JSON and integer widths differ).
pub trait ReadRow {
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    /// A nullable integer column of any width.
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    /// A nullable boolean column.
    fn opt_bool(&self, column: &str) -> Result<Option<bool>>;
    /// A nullable time column.
    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>>;
    /// A nullable JSON column.
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>>;
    /// A date column (a day, no time).
    fn date(&self, column: &str) -> Result<time::Date>;
    /// A binary column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;

    /// A text column.
    fn text(&self, column: &str) -> Result<String> {
        self.opt_text(column)?.ok_or_else(|| null(column))
    }

    /// An integer column.
    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?.ok_or_else(|| null(column))
    }

    /// A boolean column.
    fn boolean(&self, column: &str) -> Result<bool> {
        self.opt_bool(column)?.ok_or_else(|| null(column))
    }

    /// A time column.
    fn time(&self, column: &str) -> Result<OffsetDateTime> {
        self.opt_time(column)?.ok_or_else(|| null(column))
    }

    /// A non-negative integer column (a count, a position, a number of failures, a port)
    /// in the type it is used as: [`Error::BadRow`] naming the column when the stored
    /// value does not fit, never a value made up in its place.
    fn number<T: TryFrom<i64>>(&self, column: &str) -> Result<T> {
        let value = self.int(column)?;
        T::try_from(value).map_err(|_| Error::bad_row(column, format!("{value} is out of range")))
    }

    /// A nullable count column (a sum over no rows is NULL): NULL counts as 0.
    fn count(&self, column: &str) -> Result<u64> {
        match self.opt_int(column)? {
            None => Ok(0),
            Some(_) => self.number(column),
        }
    }

    /// A JSON column.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        self.opt_json(column)?.ok_or_else(|| null(column))
    }
}

fn null(column: &str) -> Error {
    Error::bad_row(column, "is unexpectedly NULL")
}

/// The `certificates` columns [`certificate`] reads, for `SELECT {CERTIFICATE_COLUMNS}
/// FROM certificates c`.
pub(crate) const CERTIFICATE_COLUMNS: &str = "c.sha256, c.serial, c.subject, c.issuer, \
    c.not_before, c.not_after, c.sans, c.key_type, c.key_bits, c.key_curve, \
    c.signature_algorithm, c.is_ca, c.self_signed, c.first_seen, c.last_seen";

/// The socket and name of a row with `address`, `port` and `sni` columns (an endpoint
/// probed without a name has `sni = ''`).
pub(crate) fn socket(row: &impl ReadRow) -> Result<(String, u16, Option<String>)> {
    Ok((
        row.text("address")?,
        port(row.int("port")?)?,
        row.opt_text("sni")?.filter(|sni| !sni.is_empty()),
    ))
}

/// The first and last sighting of a row with `{prefix}first_seen` and `{prefix}last_seen`
/// columns.
pub(crate) fn seen(row: &impl ReadRow, prefix: &str) -> Result<Seen> {
    Ok(Seen {
        first_seen: row.time(&format!("{prefix}first_seen"))?,
        last_seen: row.time(&format!("{prefix}last_seen"))?,
    })
}

/// The workload tags of a row with `app`, `env` and `owner` columns.
pub(crate) fn tags(row: &impl ReadRow) -> Result<WorkloadTags> {
    Ok(WorkloadTags {
        app: row.opt_text("app")?,
        env: row.opt_text("env")?,
        owner: row.opt_text("owner")?,
    })
}

/// A certificate from [`CERTIFICATE_COLUMNS`].
pub(crate) fn certificate(row: &impl ReadRow) -> Result<CertificateRecord> {
    Ok(CertificateRecord {
        sha256: row.text("sha256")?,
        serial: row.text("serial")?,
        subject: row.text("subject")?,
        issuer: row.text("issuer")?,
        not_before: row.time("not_before")?,
        not_after: row.time("not_after")?,
        sans: row.json("sans")?,
        key: KeyInfo {
            kind: row.text("key_type")?,
            bits: row.number("key_bits")?,
            curve: row.opt_text("key_curve")?,
        },
        signature_algorithm: row.text("signature_algorithm")?,
        is_ca: row.boolean("is_ca")?,
        self_signed: row.boolean("self_signed")?,
        seen: seen(row, "")?,
    })
}

/// Endpoints with their host, current observation and its leaf; append `WHERE ...`.
pub(crate) const ENDPOINT_SELECT: &str = "SELECT e.id, e.address, e.port, e.sni, \
    h.hostname, e.process, e.container, e.app, e.env, e.owner, e.zone, e.first_seen, \
    e.last_seen, \
    e.retired_at, e.next_probe_at, e.failures, e.last_status, e.last_error, \
    e.last_probed_at, o.id AS o_id, o.status AS o_status, o.leaf_sha256 AS o_leaf_sha256, \
    c.subject AS o_leaf_subject, c.not_after AS o_leaf_not_after, \
    o.tls_version AS o_tls_version, o.cipher AS o_cipher, o.alpn AS o_alpn, \
    o.tls_group AS o_tls_group, o.legacy AS o_legacy, \
    o.mtls_requested AS o_mtls_requested, o.mtls_required AS o_mtls_required, \
    o.mtls_enforced AS o_mtls_enforced, \
    o.ca_names AS o_ca_names, o.findings AS o_findings, \
    o.first_seen AS o_first_seen, o.last_seen AS o_last_seen \
    FROM endpoints e \
    LEFT JOIN hosts h ON h.id = e.host_id \
    LEFT JOIN observations o ON o.id = e.observation_id \
    LEFT JOIN certificates c ON c.sha256 = o.leaf_sha256";

/// A name of a socket from [`crate::browse_sql::socket_names`], with how many active
/// endpoints its socket has.
pub(crate) fn socket_name(row: &impl ReadRow) -> Result<(EndpointRecord, u64)> {
    Ok((endpoint(row)?, row.number("socket_endpoints")?))
}

/// An endpoint from [`ENDPOINT_SELECT`].
pub(crate) fn endpoint(row: &impl ReadRow) -> Result<EndpointRecord> {
    let (address, port, sni) = socket(row)?;
    Ok(EndpointRecord {
        id: EndpointId(row.int("id")?),
        address,
        port,
        sni,
        hostname: row.opt_text("hostname")?,
        process: row.opt_text("process")?,
        container: row.opt_text("container")?,
        tags: tags(row)?,
        zone: row.text("zone")?,
        seen: seen(row, "")?,
        retired_at: row.opt_time("retired_at")?,
        next_probe_at: row.time("next_probe_at")?,
        failures: row.number("failures")?,
        last_status: row
            .opt_text("last_status")?
            .map(|s| status(&s))
            .transpose()?,
        last_error: row.opt_text("last_error")?,
        last_probed_at: row.opt_time("last_probed_at")?,
        observation: observation(row)?,
    })
}

pub(crate) fn observation(row: &impl ReadRow) -> Result<Option<ObservationRecord>> {
    let Some(id) = row.opt_int("o_id")? else {
        return Ok(None);
    };
    let tls = match row.opt_text("o_tls_version")? {
        Some(version) => Some(TlsParameters {
            version,
            cipher: row.opt_text("o_cipher")?,
            alpn: row.opt_text("o_alpn")?,
            group: row.opt_text("o_tls_group")?,
            legacy: row.boolean("o_legacy")?,
        }),
        None => None,
    };
    let findings: Vec<Finding> = row.json("o_findings")?;
    Ok(Some(ObservationRecord {
        id,
        status: status(&row.text("o_status")?)?,
        leaf_sha256: row.opt_text("o_leaf_sha256")?,
        leaf_subject: row.opt_text("o_leaf_subject")?,
        leaf_not_after: row.opt_time("o_leaf_not_after")?,
        tls,
        mtls: MtlsPolicy {
            requested: row.boolean("o_mtls_requested")?,
            required: row.opt_bool("o_mtls_required")?,
            ca_names: row.json("o_ca_names")?,
            enforced: row
                .opt_text("o_mtls_enforced")?
                .map(|text| text.parse::<MtlsEnforcement>())
                .transpose()
                .map_err(|message| Error::bad_row("mtls_enforced", message))?,
        },
        findings,
        seen: seen(row, "o_")?,
    }))
}

/// A probe status from its contract spelling.
pub(crate) fn status(text: &str) -> Result<ProbeStatus> {
    Ok(serde_json::from_value(serde_json::Value::String(
        text.to_owned(),
    ))?)
}

/// A port column.
pub(crate) fn port(value: i64) -> Result<u16> {
    u16::try_from(value).map_err(|_| Error::bad_row("port", format!("{value} is out of range")))
}

/// An endpoint lease from `id, address, port, sni, sni_source, starttls, failures, lease_until`.
pub(crate) fn leased(row: &impl ReadRow) -> Result<LeasedEndpoint> {
    let (address, port, sni) = socket(row)?;
    Ok(LeasedEndpoint {
        id: EndpointId(row.int("id")?),
        address: address
            .parse()
            .map_err(|_| Error::bad_row("address", format!("{address:?} is not an IP")))?,
        port,
        sni,
        // A spelling this version does not know (written by a later one) counts as not
        // guessed: the endpoint keeps every finding.
        sni_source: row
            .opt_text("sni_source")?
            .as_deref()
            .and_then(NameSource::parse),
        starttls: row.opt_text("starttls")?,
        failures: row.number("failures")?,
        lease_until: row.time("lease_until")?,
    })
}

/// A missing row, named.
pub(crate) fn not_found_as(what: &'static str, error: sqlx::Error) -> Error {
    match Error::from(error) {
        Error::NotFound { .. } => Error::NotFound { what },
        other => other,
    }
}

/// The chain (SHA-256s, leaf first) of the latest observation containing `$1`.
pub(crate) const LATEST_CHAIN: &str = "SELECT oc.sha256 FROM observation_chain oc \
    WHERE oc.observation_id = ( \
        SELECT o.id FROM observation_chain mine \
        JOIN observations o ON o.id = mine.observation_id \
        WHERE mine.sha256 = $1 ORDER BY o.last_seen DESC, o.id DESC LIMIT 1) \
    ORDER BY oc.position";

/// Where certificate `$1` was served, latest first; read with [`served_at`].
pub(crate) const SERVED_AT: &str = "SELECT e.id, e.address, e.port, e.sni, e.app, e.env, \
        e.owner, oc.position, o.first_seen, o.last_seen, \
        (e.observation_id IS NOT NULL AND e.observation_id = o.id \
            AND e.retired_at IS NULL) AS current \
    FROM observation_chain oc \
    JOIN observations o ON o.id = oc.observation_id \
    JOIN endpoints e ON e.id = o.endpoint_id \
    WHERE oc.sha256 = $1 \
    ORDER BY o.last_seen DESC, e.id LIMIT 1000";

/// A row of [`SERVED_AT`].
pub(crate) fn served_at(row: &impl ReadRow) -> Result<ServedAt> {
    let (address, port, sni) = socket(row)?;
    Ok(ServedAt {
        endpoint_id: EndpointId(row.int("id")?),
        address,
        port,
        sni,
        position: row.number("position")?,
        tags: tags(row)?,
        current: row.boolean("current")?,
        seen: seen(row, "")?,
    })
}

/// An expiring certificate and how many endpoints serve it (`endpoints`).
pub(crate) fn expiring(row: &impl ReadRow) -> Result<ExpiringCertificate> {
    Ok(ExpiringCertificate {
        certificate: certificate(row)?,
        endpoints: row.number("endpoints")?,
    })
}

/// Active endpoints with an observation, counted by client-certificate policy, grouped
/// by a workload tag (`group_key` NULL for untagged); read with [`mtls_group`].
/// mTLS adoption by group, counting sockets (see `overview_sql::REPRESENTS`).
pub(crate) fn mtls_groups_query(by: MtlsGrouping) -> String {
    let column = by.as_str();
    format!(
        "SELECT e.{column} AS group_key, \
             SUM(CASE WHEN o.mtls_requested AND o.mtls_required THEN 1 ELSE 0 END) \
                 AS required, \
             SUM(CASE WHEN o.mtls_requested AND (o.mtls_required IS NULL \
                 OR NOT o.mtls_required) THEN 1 ELSE 0 END) AS optional, \
             SUM(CASE WHEN o.mtls_requested THEN 0 ELSE 1 END) AS absent \
         FROM endpoints e JOIN observations o ON o.id = e.observation_id \
         WHERE e.retired_at IS NULL AND {represents} = 1 GROUP BY e.{column}",
        represents = crate::overview_sql::REPRESENTS,
    )
}

/// Stores today's groups, for `$1` day and `$2` grouping name.
pub(crate) fn mtls_snapshot_insert(by: MtlsGrouping) -> String {
    format!(
        "INSERT INTO mtls_snapshots (day, grouping, group_key, required, optional, absent) \
         SELECT $1, $2, COALESCE(g.group_key, ''), g.required, g.optional, g.absent \
         FROM ({}) g",
        mtls_groups_query(by)
    )
}

/// Counts from `required`, `optional`, `absent` columns.
pub(crate) fn mtls_counts(row: &impl ReadRow) -> Result<MtlsCounts> {
    let count = |column| row.number::<u64>(column);
    Ok(MtlsCounts {
        required: count("required")?,
        optional: count("optional")?,
        none: count("absent")?,
    })
}

/// A row of [`mtls_groups_query`].
pub(crate) fn mtls_group(row: &impl ReadRow) -> Result<MtlsGroup> {
    Ok(MtlsGroup {
        key: row.opt_text("group_key")?,
        counts: mtls_counts(row)?,
    })
}

/// Row counts of the main tables; read with [`inventory`].
pub(crate) const INVENTORY: &str = "SELECT \
    (SELECT COUNT(*) FROM hosts) AS hosts, \
    (SELECT COUNT(*) FROM endpoints) AS endpoints, \
    (SELECT COUNT(*) FROM endpoints WHERE retired_at IS NULL) AS active_endpoints, \
    (SELECT COUNT(*) FROM certificates) AS certificates, \
    (SELECT COUNT(*) FROM observations) AS observations";

/// The row of [`INVENTORY`].
pub(crate) fn inventory(row: &impl ReadRow) -> Result<Inventory> {
    let count = |column| row.number::<u64>(column);
    Ok(Inventory {
        hosts: count("hosts")?,
        endpoints: count("endpoints")?,
        active_endpoints: count("active_endpoints")?,
        certificates: count("certificates")?,
        observations: count("observations")?,
    })
}

/// The agent of the first stored token row (`agent`, `token_sha256`) a token matches.
/// A token's kind, from `agent_tokens.kind`.
pub(crate) fn token_kind(row: &impl ReadRow) -> Result<TokenKind> {
    let stored = row.text("kind")?;
    TokenKind::parse(&stored).ok_or_else(|| Error::BadRow {
        column: "kind".into(),
        message: format!("unknown token kind {stored:?}"),
    })
}

pub(crate) fn matching_agent(
    token: &str,
    candidates: &[(String, TokenKind, Vec<u8>, Option<String>)],
) -> Result<Option<Credential>> {
    for (agent, kind, sha256, host_key) in candidates {
        if crate::token::matches(token, sha256) {
            return Ok(Some(Credential {
                agent: AgentName::new(agent.clone())?,
                kind: *kind,
                host_key: host_key.clone(),
            }));
        }
    }
    Ok(None)
}
