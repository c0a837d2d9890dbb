//! The SQL of the browse queries ([`crate::browse`]), built once for both backends: the
//! text is the same but for a few predicates ([`Dialect`]); each backend binds the
//! values ([`Bind`]) in its own types and reads the rows with [`ReadRow`].

use time::OffsetDateTime;

use crate::browse::*;
use crate::db::{Batch, Db};
pub(crate) use crate::db::{Bind, Dialect, Query};
use crate::error::{Error, Result};
use crate::rows::{seen, ReadRow, CERTIFICATE_COLUMNS, ENDPOINT_SELECT};

/// Certificates of a lookup, newest expiry first; read with `rows::certificate`.
pub(crate) fn certificate_search(search: &CertificateSearch) -> Result<Query> {
    let mut query = Query::default();
    let condition = match &search.lookup {
        CertificateLookup::Hostname(hostname) => {
            let names = crate::names::hostname_candidates(hostname)?;
            let placeholders: Vec<String> = names
                .into_iter()
                .map(|name| query.arg(Bind::Text(name)))
                .collect();
            format!(
                "c.sha256 IN (SELECT n.sha256 FROM certificate_names n WHERE n.name IN ({}))",
                placeholders.join(", ")
            )
        }
        CertificateLookup::Serial(serial) => {
            let placeholders: Vec<String> = serial_candidates(serial)?
                .into_iter()
                .map(|serial| query.arg(Bind::Text(serial)))
                .collect();
            format!("c.serial IN ({})", placeholders.join(", "))
        }
        CertificateLookup::Fingerprint(fingerprint) => {
            let fingerprint = normalize_fingerprint(fingerprint)?;
            let column = if fingerprint.len() == 40 {
                "sha1"
            } else {
                "sha256"
            };
            format!("c.{column} = {}", query.arg(Bind::Text(fingerprint)))
        }
        CertificateLookup::Issuer(issuer) => {
            let issuer = normalize_issuer(issuer)?;
            format!("lower(c.issuer) = {}", query.arg(Bind::Text(issuer)))
        }
    };
    let mut sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE {condition}");
    if let Some(after) = sha256_cursor(search.after.as_deref())? {
        let after = query.arg(Bind::Text(after));
        sql.push_str(&format!(
            " AND (c.not_after, c.sha256) < \
             (SELECT k.not_after, k.sha256 FROM certificates k WHERE k.sha256 = {after})"
        ));
    }
    let limit = query.arg(Bind::Int(i64::from(search.limit)));
    sql.push_str(&format!(
        " ORDER BY c.not_after DESC, c.sha256 DESC LIMIT {limit}"
    ));
    query.sql = sql;
    Ok(query)
}

/// Leaves served now by active endpoints that expire before `deadline`, soonest first,
/// with how many endpoints serve each; read with `rows::expiring`.
pub(crate) fn expiring_leaves(
    deadline: OffsetDateTime,
    after: Option<&str>,
    limit: u32,
) -> Result<Query> {
    let mut query = Query::default();
    let deadline = query.arg(Bind::Time(deadline));
    let cursor = match sha256_cursor(after)? {
        Some(after) => format!(
            " AND (e.leaf_not_after, e.leaf_sha256) > \
             (SELECT k.not_after, k.sha256 FROM certificates k WHERE k.sha256 = {})",
            query.arg(Bind::Text(after))
        ),
        None => String::new(),
    };
    let limit = query.arg(Bind::Int(i64::from(limit)));
    query.sql = format!(
        "SELECT {CERTIFICATE_COLUMNS}, x.endpoints FROM ( \
             SELECT e.leaf_not_after AS t, e.leaf_sha256 AS s, COUNT(*) AS endpoints \
             FROM endpoints e \
             WHERE e.retired_at IS NULL AND e.leaf_not_after IS NOT NULL \
                 AND e.leaf_not_after <= {deadline}{cursor} \
             GROUP BY e.leaf_not_after, e.leaf_sha256 \
             ORDER BY e.leaf_not_after, e.leaf_sha256 LIMIT {limit}) x \
         JOIN certificates c ON c.sha256 = x.s ORDER BY x.t, x.s"
    );
    Ok(query)
}

/// The part of [`ENDPOINT_SELECT`] that starts from the endpoints.
const ENDPOINTS_FIRST: &str = "FROM endpoints e LEFT JOIN hosts h ON h.id = e.host_id \
    LEFT JOIN observations o ON o.id = e.observation_id";

/// The same rows, starting from the (current) observations: lists by a fact of the
/// observation walk its partial index in id order.
const OBSERVATIONS_FIRST: &str = "FROM observations o \
    JOIN endpoints e ON e.observation_id = o.id LEFT JOIN hosts h ON h.id = e.host_id";

/// Active endpoints of a search, in its order; read with `rows::endpoint`.
pub(crate) fn endpoint_search(dialect: Dialect, search: &EndpointSearch) -> Query {
    let mut query = Query::default();
    let by_observation = search.by_observation();
    let select = if by_observation {
        ENDPOINT_SELECT.replacen(ENDPOINTS_FIRST, OBSERVATIONS_FIRST, 1)
    } else {
        ENDPOINT_SELECT.to_owned()
    };
    let mut conditions = vec!["e.retired_at IS NULL".to_owned()];
    if let Some(address) = search.address {
        conditions.push(format!(
            "e.address = {}",
            query.arg(Bind::Text(address.to_string()))
        ));
    }
    if let Some(port) = search.port {
        conditions.push(format!(
            "e.port = {}",
            query.arg(Bind::Int(i64::from(port)))
        ));
    }
    for (column, value) in [
        ("app", &search.tags.app),
        ("env", &search.tags.env),
        ("owner", &search.tags.owner),
    ] {
        if let Some(value) = value {
            conditions.push(format!(
                "e.{column} = {}",
                query.arg(Bind::Text(value.clone()))
            ));
        }
    }
    if let Some(state) = search.mtls {
        conditions.push(dialect.mtls(state).to_owned());
    }
    if let Some(finding) = search.finding {
        conditions.push(dialect.finding(finding));
    }
    if search.per_socket {
        conditions.push(format!("({}) = 1", crate::overview_sql::REPRESENTS));
    }
    let key = if by_observation { "o.id" } else { "e.id" };
    if let Some(after) = search.after {
        conditions.push(format!("{key} > {}", query.arg(Bind::Int(after))));
    }
    let limit = query.arg(Bind::Int(i64::from(search.limit)));
    query.sql = format!(
        "{select} WHERE {} ORDER BY {key} LIMIT {limit}",
        conditions.join(" AND ")
    );
    query
}

/// The active endpoints of the sockets of `heads`, the first
/// [`NAMES_PER_SOCKET`] + 1 of each by name (the head is one of them: it is the first),
/// with `socket_endpoints`, how many the socket has; `None` for no heads. Read with
/// `rows::endpoint` and [`nest`]. The sockets are one bound batch joined to the
/// endpoints: spelt as 100 `(address = .. AND port = ..)` alternatives, PostgreSQL spent
/// most of a socket list planning them.
pub(crate) fn socket_names<D: Db>(heads: &[crate::records::EndpointRecord]) -> Option<Query> {
    if heads.is_empty() {
        return None;
    }
    let mut query = Query::default();
    let sockets = Batch::new(heads.len())
        .text("address", heads, |head| Some(head.address.as_str()))
        .column("port", heads, |head| Some(i32::from(head.port)));
    let source = D::bind_batch(&mut query, sockets);
    let ranked = ENDPOINT_SELECT.replacen(
        " FROM endpoints e",
        ", ROW_NUMBER() OVER (PARTITION BY e.address, e.port ORDER BY e.sni) AS name_rank, \
         COUNT(*) OVER (PARTITION BY e.address, e.port) AS socket_endpoints FROM endpoints e",
        1,
    );
    let keep = query.arg(Bind::Int(i64::from(NAMES_PER_SOCKET) + 1));
    query.sql = format!(
        "SELECT * FROM ({ranked} WHERE e.retired_at IS NULL AND (e.address, e.port) IN \
         (SELECT u.address, u.port FROM {source})) named \
         WHERE name_rank <= {keep} ORDER BY address, port, sni"
    );
    Some(query)
}

/// One endpoint, retired or not, by `$1`; read with `rows::endpoint`.
pub(crate) fn endpoint_by_id() -> String {
    format!("{ENDPOINT_SELECT} WHERE e.id = $1")
}

/// The observations of endpoint `$1`, latest first; read with `rows::observation`.
pub(crate) const ENDPOINT_HISTORY: &str = "SELECT o.id AS o_id, o.status AS o_status, \
    o.leaf_sha256 AS o_leaf_sha256, c.subject AS o_leaf_subject, \
    c.not_after AS o_leaf_not_after, o.tls_version AS o_tls_version, o.cipher AS o_cipher, \
    o.alpn AS o_alpn, o.tls_group AS o_tls_group, o.legacy AS o_legacy, \
    o.mtls_requested AS o_mtls_requested, o.mtls_required AS o_mtls_required, \
    o.mtls_enforced AS o_mtls_enforced, \
    o.ca_names AS o_ca_names, o.findings AS o_findings, o.first_seen AS o_first_seen, \
    o.last_seen AS o_last_seen \
    FROM observations o LEFT JOIN certificates c ON c.sha256 = o.leaf_sha256 \
    WHERE o.endpoint_id = $1 ORDER BY o.last_seen DESC, o.id DESC LIMIT 50";

/// The leaves served before and after certificate `$1` on the endpoints that served it
/// as their leaf; read with [`succession`].
pub(crate) const CERTIFICATE_HISTORY: &str = "WITH mine AS ( \
        SELECT o.endpoint_id AS endpoint_id, MIN(o.first_seen) AS first_seen \
        FROM observation_chain oc JOIN observations o ON o.id = oc.observation_id \
        WHERE oc.sha256 = $1 AND oc.position = 0 \
        GROUP BY o.endpoint_id ORDER BY MAX(o.last_seen) DESC LIMIT 200) \
    SELECT other.leaf_sha256 AS sha256, c.subject, c.not_after, \
        CASE WHEN other.first_seen > mine.first_seen THEN 1 ELSE 0 END AS later, \
        COUNT(DISTINCT other.endpoint_id) AS endpoints, MIN(other.first_seen) AS first_seen \
    FROM mine JOIN observations other ON other.endpoint_id = mine.endpoint_id \
    JOIN certificates c ON c.sha256 = other.leaf_sha256 \
    WHERE other.leaf_sha256 <> $1 \
    GROUP BY other.leaf_sha256, c.subject, c.not_after, \
        CASE WHEN other.first_seen > mine.first_seen THEN 1 ELSE 0 END \
    ORDER BY MIN(other.first_seen) DESC LIMIT 100";

/// Sorts rows of [`CERTIFICATE_HISTORY`] into what came after and what came before.
pub(crate) fn history<R: ReadRow>(rows: &[R]) -> Result<CertificateHistory> {
    let mut history = CertificateHistory::default();
    for row in rows {
        let succession = Succession {
            sha256: row.text("sha256")?,
            subject: row.text("subject")?,
            not_after: row.time("not_after")?,
            endpoints: count(row, "endpoints")?,
            first_seen: row.time("first_seen")?,
        };
        if row.int("later")? == 1 {
            history.replaced_by.push(succession);
        } else {
            history.replaces.push(succession);
        }
    }
    Ok(history)
}

/// Notifications of a filter, newest first; read with `notify_records::notification`.
pub(crate) fn notification_page(filter: &NotificationFilter) -> Query {
    let mut query = Query::default();
    let mut conditions = vec!["1 = 1".to_owned()];
    if filter.failed_only {
        conditions
            .push("n.sent_at IS NULL AND n.resolved_at IS NULL AND n.attempts > 0".to_owned());
    }
    if let Some(owner) = &filter.owner {
        conditions.push(format!(
            "n.owner = {}",
            query.arg(Bind::Text(owner.clone()))
        ));
    }
    if let Some(after) = filter.after {
        conditions.push(format!("n.id < {}", query.arg(Bind::Int(after))));
    }
    let limit = query.arg(Bind::Int(i64::from(filter.limit)));
    query.sql = format!(
        "{} WHERE {} ORDER BY n.id DESC LIMIT {limit}",
        crate::notify_records::NOTIFICATION_SELECT,
        conditions.join(" AND ")
    );
    query
}

/// A count column (NULL counts as 0).
pub(crate) fn count(row: &impl ReadRow, column: &str) -> Result<u64> {
    row.count(column)
}

/// A SHA-256 cursor as stored, or an error naming `cursor`.
pub(crate) fn sha256_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(text) if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(text.to_ascii_lowercase()))
        }
        Some(_) => Err(Error::invalid("cursor", "is not one this server gave")),
    }
}

/// The conflicting claims on one endpoint (`$1`), latest first.
pub(crate) const ENDPOINT_CLAIMS: &str = "SELECT h.hostname, h.machine_id, h.agent, \
        c.first_seen, c.last_seen \
    FROM endpoint_claims c JOIN hosts h ON h.id = c.host_id \
    WHERE c.endpoint_id = $1 ORDER BY c.last_seen DESC LIMIT 50";

/// A claim from [`ENDPOINT_CLAIMS`].
pub(crate) fn claim(row: &impl ReadRow) -> Result<EndpointClaim> {
    Ok(EndpointClaim {
        hostname: row.text("hostname")?,
        machine_id: row.text("machine_id")?,
        agent: row.text("agent")?,
        seen: seen(row, "")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_model::Finding;

    #[test]
    fn observation_first_lists_rewrite_the_endpoint_select() {
        assert!(ENDPOINT_SELECT.contains(ENDPOINTS_FIRST));
        let search = EndpointSearch {
            finding: Some(Finding::WeakKey),
            limit: 10,
            ..EndpointSearch::default()
        };
        let query = endpoint_search(Dialect::Postgres, &search);
        assert!(query.sql.contains(OBSERVATIONS_FIRST), "{}", query.sql);
        assert!(query.sql.contains("o.findings ? 'weak_key'"));
        assert!(
            query.sql.ends_with("ORDER BY o.id LIMIT $1"),
            "{}",
            query.sql
        );
    }
}
