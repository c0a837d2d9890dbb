//! What the web view and the JSON API ask for, a page at a time: lookups of certificates,
//! lists of endpoints, the fleet overview. Every list has a stable order and a keyset
//! cursor (the key of the last row of the previous page), so a page is one index range.

use std::net::IpAddr;

use certfleet_model::Finding;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::records::{
    CertificateRecord, EndpointId, EndpointRecord, MtlsCounts, MtlsDay, MtlsGroup,
    ObservationRecord, Seen, WorkloadTags,
};
use crate::rotation::DiscoveryLatency;

/// Every finding, in the model's order: the kinds the overview counts and lists filter by.
pub const FINDINGS: [Finding; 12] = [
    Finding::Expired,
    Finding::NotYetValid,
    Finding::ExpiresSoon,
    Finding::SelfSigned,
    Finding::Untrusted,
    Finding::IncompleteChain,
    Finding::WrongOrder,
    Finding::HostnameMismatch,
    Finding::WeakKey,
    Finding::Sha1Signature,
    Finding::LegacyProtocol,
    Finding::ChainExpiresFirst,
];

/// How certificates are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateLookup {
    /// SAN or subject CN, wildcards matched as browsers do.
    Hostname(String),
    /// A serial in any spelling people paste: colons, spaces, dashes, case, leading
    /// zeros, `0x`, or decimal (digits only: both readings are tried).
    Serial(String),
    /// A SHA-256 (64 hex digits) or SHA-1 (40 hex digits) fingerprint, colons allowed.
    Fingerprint(String),
    /// The issuer's distinguished name (RFC 4514), case-insensitive, spaces after commas
    /// ignored.
    Issuer(String),
}

/// A page of a certificate lookup, newest expiry first (then SHA-256, descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSearch {
    /// What to look for.
    pub lookup: CertificateLookup,
    /// Keyset cursor: the SHA-256 of the last certificate of the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// An endpoint's client-certificate policy, as lists filter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MtlsState {
    /// A client certificate is requested and required.
    Required,
    /// Requested, but the server goes on without one (or its verdict is unknown).
    Optional,
    /// Not requested.
    None,
}

impl MtlsState {
    /// Its spelling in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsState::Required => "required",
            MtlsState::Optional => "optional",
            MtlsState::None => "none",
        }
    }
}

/// Which endpoints [`ReadModel::search_endpoints`](crate::ReadModel::search_endpoints) lists.
/// Every set field must match. Active endpoints only.
///
/// The order: by endpoint id, or, when `mtls` or `finding` is set (both are facts of the
/// current observation) without `address`, `app` or `owner`, by the current
/// observation's id; `after` is a key of the same kind (see [`EndpointSearch::key_of`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSearch {
    /// Exact address.
    pub address: Option<IpAddr>,
    /// Exact port.
    pub port: Option<u16>,
    /// Workload tags to match (those given).
    pub tags: WorkloadTags,
    /// Client-certificate policy of the current observation.
    pub mtls: Option<MtlsState>,
    /// A finding of the current observation.
    pub finding: Option<Finding>,
    /// Keyset cursor: the key of the last endpoint of the previous page.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Only the endpoint that stands for its socket (what the counts count: the one probed
    /// without a name, else the first name): set by
    /// [`ReadModel::search_sockets`](crate::ReadModel::search_sockets).
    pub per_socket: bool,
}

impl EndpointSearch {
    /// True when the list is ordered by current observation rather than endpoint id:
    /// when it filters by a fact of the observation and by nothing selective about the
    /// endpoint (address, app, owner), so that the observation's partial index leads.
    pub fn by_observation(&self) -> bool {
        let selective =
            self.address.is_some() || self.tags.app.is_some() || self.tags.owner.is_some();
        (self.mtls.is_some() || self.finding.is_some()) && !selective
    }

    /// The cursor key of an endpoint of this list.
    pub fn key_of(&self, endpoint: &EndpointRecord) -> i64 {
        match (&endpoint.observation, self.by_observation()) {
            (Some(observation), true) => observation.id,
            _ => endpoint.id.0,
        }
    }
}

/// A listening socket (address, port): the endpoint that stands for it (probed without a
/// name, so its certificate is the server's default; for a socket probed only under
/// names, its first name) with the other names it is probed under nested in it, each
/// with the certificate that name selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRecord {
    /// The endpoint that stands for the socket; the filters of the search apply to it.
    pub endpoint: EndpointRecord,
    /// The other active endpoints of the socket, by name (at most
    /// [`NAMES_PER_SOCKET`]).
    pub names: Vec<EndpointRecord>,
    /// How many other active endpoints the socket has (more than `names` when cut).
    pub names_total: u64,
}

/// Most names nested in one [`SocketRecord`]: a certificate with hundreds of DNS names
/// must not make a page of sockets hundreds of times larger.
pub const NAMES_PER_SOCKET: u32 = 20;

/// Nests `names` (active endpoints of the heads' sockets, from
/// [`crate::browse_sql::socket_names`], with their socket's endpoint count) under the
/// heads, in the heads' order.
pub(crate) fn nest(
    heads: Vec<EndpointRecord>,
    names: Vec<(EndpointRecord, u64)>,
) -> Vec<SocketRecord> {
    let mut by_socket: std::collections::HashMap<(String, u16), (Vec<EndpointRecord>, u64)> =
        std::collections::HashMap::new();
    for (endpoint, count) in names {
        let entry = by_socket
            .entry((endpoint.address.clone(), endpoint.port))
            .or_insert_with(|| (Vec::new(), count));
        entry.0.push(endpoint);
    }
    heads
        .into_iter()
        .map(|head| {
            let (mut names, count) = by_socket
                .remove(&(head.address.clone(), head.port))
                .unwrap_or_default();
            names.retain(|name| name.id != head.id);
            names.truncate(NAMES_PER_SOCKET as usize);
            SocketRecord {
                endpoint: head,
                names,
                names_total: count.saturating_sub(1),
            }
        })
        .collect()
}

/// One endpoint with what it served over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointDetail {
    /// The endpoint now.
    pub endpoint: EndpointRecord,
    /// Its observations, latest first (at most 50).
    pub history: Vec<ObservationRecord>,
    /// Other hosts that reported the same address and port while the endpoint's host
    /// still did: kept, not applied (see `StoreOptions::claim_window`).
    pub conflicts: Vec<EndpointClaim>,
}

/// A conflicting claim on an endpoint by another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointClaim {
    pub hostname: String,
    pub machine_id: String,
    pub agent: String,
    pub seen: Seen,
}

/// Another certificate that an endpoint served before or after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Succession {
    /// The other certificate.
    pub sha256: String,
    /// Its subject.
    pub subject: String,
    /// Its end of validity.
    pub not_after: OffsetDateTime,
    /// Endpoints where it came before (or after) this one.
    pub endpoints: u64,
    /// First time one of those endpoints served it.
    pub first_seen: OffsetDateTime,
}

/// What a certificate replaced and what replaced it, on the endpoints that served it as
/// their leaf (the 200 most recently seen).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateHistory {
    /// Leaves those endpoints served after this one, latest first.
    pub replaced_by: Vec<Succession>,
    /// Leaves those endpoints served before this one, latest first.
    pub replaces: Vec<Succession>,
}

/// Which notifications [`ReadModel::notification_page`](crate::ReadModel::notification_page)
/// lists, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationFilter {
    /// Only pending ones with at least one failed delivery attempt.
    pub failed_only: bool,
    /// Only those for this owner.
    pub owner: Option<String>,
    /// Keyset cursor: the id of the last notification of the previous page.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Leaf certificates in use (served now by an active endpoint), by days left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExpiryBuckets {
    /// Expired and still served.
    pub expired: u64,
    /// Under 7 days left.
    pub within_7_days: u64,
    /// 7 to 30 days left.
    pub within_30_days: u64,
    /// 30 to 90 days left.
    pub within_90_days: u64,
    /// 90 days or more left (counted only for endpoints, see [`FleetOverview`]).
    pub later: u64,
}

/// Active endpoints by what their scheduling says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// Due for a probe now and not leased.
    pub due: u64,
    /// Due for more than an hour.
    pub overdue: u64,
    /// Leased to a prober right now.
    pub leased: u64,
    /// At least one failed probe in a row.
    pub failing: u64,
    /// Probed (results recorded) in the last five minutes, by every prober: the fleet's
    /// probe rate is this over 300 seconds.
    pub probed_last_5m: u64,
}

/// A count by name (a finding, a probe status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamedCount {
    /// The finding or status, as spelt in the probe contract (`never` for not probed).
    pub name: String,
    /// How many active endpoints.
    pub count: u64,
}

/// Where the fleet stands: one pass over the active endpoints and a few index ranges.
/// Expensive at fleet size (seconds for millions of endpoints): callers cache it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FleetOverview {
    /// When it was computed (the store's clock).
    pub computed_at: OffsetDateTime,
    /// Hosts ever reported.
    pub hosts: u64,
    /// Distinct certificates ever seen.
    pub certificates: u64,
    /// Endpoints not retired (a socket once, plus once per name it is probed under): the
    /// probe work.
    pub active_endpoints: u64,
    /// Listening sockets (address, port) with an active endpoint: what people count. The
    /// mTLS, findings, days-left and probe-status figures count sockets, each as its
    /// socket's unnamed endpoint sees it (or its first name, for a socket only probed
    /// under names).
    pub sockets: u64,
    /// Active endpoints with a current observation (probed, TLS).
    pub observed_endpoints: u64,
    /// Distinct leaf certificates in use by days left (`later` is 0: not counted).
    pub certificates_by_days_left: ExpiryBuckets,
    /// Active endpoints by the days left of their leaf.
    pub endpoints_by_days_left: ExpiryBuckets,
    /// mTLS policy of the observed endpoints.
    pub mtls: MtlsCounts,
    /// The same by `app` tag, in key order.
    pub mtls_by_app: Vec<MtlsGroup>,
    /// The same by `env` tag, in key order.
    pub mtls_by_env: Vec<MtlsGroup>,
    /// Daily snapshots of the whole fleet, oldest first (at most 90).
    pub mtls_trend: Vec<MtlsDay>,
    /// Active endpoints whose current observation has each finding (every kind listed).
    pub findings: Vec<NamedCount>,
    /// Active endpoints by the status of their last probe (`never`: not probed yet).
    pub probe_status: Vec<NamedCount>,
    /// Scheduling.
    pub queue: QueueDepth,
    /// Pending notifications with at least one failed delivery attempt.
    pub failed_notifications: u64,
    /// Claims on endpoints by a host other than their live one (hostile or misconfigured
    /// agents), kept and not applied.
    pub endpoint_conflicts: u64,
    /// How long the service took to see certificate rotations.
    pub discovery: DiscoveryLatency,
    /// The probe queue of each zone, with the live probers serving it.
    pub zones: Vec<crate::ZoneQueue>,
}

impl FleetOverview {
    /// The count of one finding.
    pub fn finding(&self, finding: Finding) -> u64 {
        self.findings
            .iter()
            .find(|count| count.name == finding.as_str())
            .map_or(0, |count| count.count)
    }
}

/// The stored spellings a pasted serial may stand for: its hex reading (lowercase, no
/// separators, no leading zeros) and, when it is all decimal digits without separators,
/// its decimal reading too.
pub fn serial_candidates(serial: &str) -> Result<Vec<String>> {
    let trimmed = serial.trim();
    let bad = || {
        Error::invalid(
            "serial",
            "must be hexadecimal (colons, spaces and 0x allowed) or decimal",
        )
    };
    let hex = crate::names::normalize_serial(trimmed);
    let decimal = trimmed.bytes().all(|b| b.is_ascii_digit()) && !trimmed.is_empty();
    let mut candidates = Vec::new();
    if let Ok(hex) = hex {
        candidates.push(hex);
    }
    if decimal {
        let converted = decimal_to_hex(trimmed).ok_or_else(bad)?;
        if !candidates.contains(&converted) {
            candidates.push(converted);
        }
    }
    if candidates.is_empty() {
        return Err(bad());
    }
    Ok(candidates)
}

/// A decimal number of up to 60 digits (serials are at most 20 bytes, 49 digits) in
/// lowercase hex without leading zeros.
fn decimal_to_hex(decimal: &str) -> Option<String> {
    if decimal.len() > 60 {
        return None;
    }
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut remainder = 0;
        for digit in digits.iter_mut() {
            let value = remainder * 10 + *digit;
            *digit = value / 16;
            remainder = value % 16;
        }
        hex.push(char::from_digit(remainder, 16)?);
    }
    if hex.is_empty() {
        return Some("0".to_owned());
    }
    Some(hex.iter().rev().collect())
}

/// A fingerprint as stored: lowercase hex without separators; SHA-256 (64 digits) or
/// SHA-1 (40 digits).
pub fn normalize_fingerprint(text: &str) -> Result<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = hex
        .strip_prefix("sha256/")
        .or_else(|| hex.strip_prefix("sha1/"))
        .unwrap_or(&hex)
        .to_owned();
    if matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(Error::invalid(
            "fingerprint",
            "must be a SHA-256 (64 hex digits) or SHA-1 (40 hex digits)",
        ))
    }
}

/// An issuer DN as compared: lower-cased, without spaces around unescaped commas.
pub fn normalize_issuer(issuer: &str) -> Result<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in issuer.trim().chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(current.trim().to_owned());
            current.clear();
        } else {
            current.push(c);
        }
    }
    parts.push(current.trim().to_owned());
    let joined = parts.join(",").to_lowercase();
    if joined.is_empty() || joined.len() > 1024 {
        return Err(Error::invalid("issuer", "must be a distinguished name"));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials_are_read_both_ways() {
        assert_eq!(
            serial_candidates("255").ok(),
            Some(vec!["255".to_owned(), "ff".to_owned()])
        );
        assert_eq!(
            serial_candidates("0x00FF").ok(),
            Some(vec!["ff".to_owned()])
        );
        assert_eq!(
            serial_candidates("0A:BC").ok(),
            Some(vec!["abc".to_owned()])
        );
        let big = "1234567890123456789012345678901234567890";
        assert_eq!(
            decimal_to_hex(big).as_deref(),
            Some("3a0c92075c0dbf3b8acbc5f96ce3f0ad2")
        );
        assert!(serial_candidates("xyz").is_err());
    }

    #[test]
    fn fingerprints_and_issuers_normalize() {
        let sha1 = "AB:CD:".repeat(10);
        assert_eq!(normalize_fingerprint(&sha1).ok(), Some("abcd".repeat(10)));
        assert!(normalize_fingerprint("abc").is_err());
        assert_eq!(
            normalize_issuer(" CN=Example CA, O=Example\\, Inc ")
                .ok()
                .as_deref(),
            Some("cn=example ca,o=example\\, inc")
        );
    }

    fn endpoint_at(id: i64, port: u16, sni: Option<&str>) -> EndpointRecord {
        let now = OffsetDateTime::UNIX_EPOCH;
        EndpointRecord {
            id: crate::records::EndpointId(id),
            address: "10.0.0.1".into(),
            port,
            sni: sni.map(str::to_owned),
            hostname: None,
            process: None,
            container: None,
            tags: crate::WorkloadTags::default(),
            zone: "default".into(),
            seen: Seen {
                first_seen: now,
                last_seen: now,
            },
            retired_at: None,
            next_probe_at: now,
            failures: 0,
            last_status: None,
            last_error: None,
            last_probed_at: None,
            observation: None,
        }
    }

    #[test]
    fn names_nest_under_their_socket_without_the_head_and_cut_at_the_bound() {
        let heads = vec![
            endpoint_at(1, 443, None),
            endpoint_at(2, 8443, Some("a.test")),
        ];
        let mut names = vec![(endpoint_at(1, 443, None), 31)];
        for n in 0..NAMES_PER_SOCKET + 2 {
            names.push((endpoint_at(100 + i64::from(n), 443, Some("n.test")), 31));
        }
        names.push((endpoint_at(2, 8443, Some("a.test")), 2));
        names.push((endpoint_at(3, 8443, Some("b.test")), 2));
        let sockets = nest(heads, names);
        assert_eq!(sockets.len(), 2);
        assert_eq!(sockets[0].endpoint.id.0, 1);
        assert_eq!(sockets[0].names.len(), NAMES_PER_SOCKET as usize);
        assert!(sockets[0].names.iter().all(|n| n.id.0 >= 100));
        assert_eq!(sockets[0].names_total, 30);
        assert_eq!(sockets[1].endpoint.sni.as_deref(), Some("a.test"));
        assert_eq!(sockets[1].names.len(), 1);
        assert_eq!(sockets[1].names[0].sni.as_deref(), Some("b.test"));
        assert_eq!(sockets[1].names_total, 1);
    }
}

/// One page of an export: rows last seen at or after `since`, at most `limit`, after the
/// cursor (which also says what is exported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPage {
    pub since: OffsetDateTime,
    pub after: ExportCursor,
    pub limit: u32,
}

/// What an export reads, and the key of the last row of the previous page (`None`: from
/// the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportCursor {
    /// Certificates, by SHA-256.
    Certificates(Option<String>),
    /// Endpoints, retired ones too, by id.
    Endpoints(Option<EndpointId>),
}

/// The rows of an export page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportRows {
    Certificates(Vec<CertificateRecord>),
    Endpoints(Vec<EndpointRecord>),
}
