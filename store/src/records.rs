//! What the store hands in and out, in domain words. Serializable, so the web layer can
//! answer with them directly.

use std::fmt;
use std::net::IpAddr;

use certfleet_model::{Finding, KeyInfo, MtlsPolicy, ProbeStatus, TlsParameters};
use time::{Date, OffsetDateTime};

use crate::error::{Error, Result};

/// The name an agent token was issued to (`certfleet token create --agent NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentName(String);

impl AgentName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 128;

    /// A name of 1 to 128 printable characters.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() || name.len() > Self::MAX_LEN {
            return Err(Error::invalid("agent", "must be 1 to 128 bytes"));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid("agent", "contains control characters"));
        }
        Ok(AgentName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who presented a token: the agent (or operator) it was issued to, what kind of token
/// it is and, for a token bound to one host, that host's key (its machine id, or
/// `hostname:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub agent: AgentName,
    pub kind: TokenKind,
    pub host_key: Option<String>,
}

/// What a token may do. Stored as [`TokenKind::as_str`] in `agent_tokens.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An agent's: it reports its host (`certfleet token create --agent NAME`).
    Agent,
    /// An operator's: it asks for probes (`certfleet token create --operator NAME`); it
    /// never reports.
    Operator,
}

impl TokenKind {
    /// The stored spelling: `agent` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Agent => "agent",
            TokenKind::Operator => "operator",
        }
    }

    /// The kind a stored spelling names; `None` for anything else.
    pub fn parse(stored: &str) -> Option<TokenKind> {
        match stored {
            "agent" => Some(TokenKind::Agent),
            "operator" => Some(TokenKind::Operator),
            _ => None,
        }
    }
}

/// A token as `certfleet token list` shows it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub agent: String,
    pub kind: TokenKind,
    pub host_key: Option<String>,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

/// The store's identifier of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(pub i64);

/// What became of an operator's request to probe an endpoint now
/// ([`ProbeQueue::request_probe`](crate::ProbeQueue::request_probe)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeRequest {
    /// The endpoint is due now, ahead of the endpoints the schedule made due: the next
    /// lease of any prober takes it.
    Requested {
        /// When it was asked for (the store's clock).
        at: OffsetDateTime,
    },
    /// A probe of the endpoint was asked for within the window: nothing was changed.
    Limited {
        /// How long until the endpoint may be asked for again (at least a second).
        retry_after: time::Duration,
    },
    /// The endpoint is probed by its host's own agent (`agent.probe_local`), never by a
    /// prober: nothing was changed. Its next result comes with the host's next report.
    ProbedByAgent {
        /// The host's name.
        hostname: String,
    },
}

/// What [`IngestStore::ingest_report`](crate::IngestStore::ingest_report) did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestCounts {
    /// Sockets in the report.
    pub sockets: u64,
    /// Distinct endpoints the report stands for (created or refreshed).
    pub endpoints: u64,
    /// Sockets that give nothing to probe from the centre (loopback, UDP, wildcard
    /// without reachable addresses).
    pub skipped: u64,
    /// Endpoints another live host reported within the claim window: kept as conflicts,
    /// not taken over.
    pub conflicts: u64,
    /// The agent's own probe results recorded (`probes`, agent-side probing).
    pub probes: u64,
    /// The agent's own probe results refused: not one of the report's own sockets, not
    /// this host's endpoint, or not self-consistent (a PEM that is not its SHA-256).
    pub probes_refused: u64,
}

/// An endpoint handed to one prober worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedEndpoint {
    /// The endpoint to report results for.
    pub id: EndpointId,
    /// Address to connect to.
    pub address: IpAddr,
    /// Port to connect to.
    pub port: u16,
    /// SNI name to send, if any.
    pub sni: Option<String>,
    /// Where that name came from (`None`: no name, or not known).
    pub sni_source: Option<NameSource>,
    /// STARTTLS forced for this endpoint (`smtp`, ..., `none`); `None`: by the port.
    pub starttls: Option<String>,
    /// Failed probes in a row before this one.
    pub failures: u32,
    /// The lease deadline: after it, another worker may lease the endpoint again.
    pub lease_until: OffsetDateTime,
}

/// Where the name of a named endpoint `(address, port, sni)` came from. Stored as
/// [`NameSource::as_str`] in `endpoints.sni_source`. [`NameSource::is_guessed`]: the names
/// the service guessed (the reporting host's name, the address's PTR name), which never
/// raise `hostname_mismatch` and are kept only while they select another certificate than
/// the socket's default (docs/probing.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NameSource {
    /// A DNS name in the SubjectAltName of a leaf the socket served.
    Certificate,
    /// A static target's host name or one of its `names` (`[[probe.targets]]`).
    Config,
    /// A name found in DNS for the address other than its PTR name.
    Dns,
    /// A name a report gave for the socket.
    Report,
    /// Guessed: the host name of the workload that reported the socket.
    HostName,
    /// Guessed: the PTR name of the address.
    Ptr,
}

impl NameSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NameSource::Certificate => "certificate",
            NameSource::Config => "config",
            NameSource::Dns => "dns",
            NameSource::Report => "report",
            NameSource::HostName => "host_name",
            NameSource::Ptr => "ptr",
        }
    }

    /// From the stored spelling; `None` for anything else.
    pub fn parse(stored: &str) -> Option<NameSource> {
        [
            NameSource::Certificate,
            NameSource::Config,
            NameSource::Dns,
            NameSource::Report,
            NameSource::HostName,
            NameSource::Ptr,
        ]
        .into_iter()
        .find(|source| source.as_str() == stored)
    }

    /// A name the service guessed rather than one someone uses for the socket.
    pub fn is_guessed(self) -> bool {
        matches!(self, NameSource::HostName | NameSource::Ptr)
    }

    /// The stored spellings of the guessed sources, for SQL.
    pub const GUESSED: [&'static str; 2] = ["host_name", "ptr"];
}

/// When something was first and last seen: an endpoint reported, a certificate or an
/// observation probed, a claim made. Inline in the JSON of the records that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The first time.
    pub first_seen: OffsetDateTime,
    /// The last time.
    pub last_seen: OffsetDateTime,
}

/// The workload tags of an endpoint: its host's (or its socket's) `app`, `env` and `owner`
/// tags, or a static target's. Inline in the JSON of the records that carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct WorkloadTags {
    /// `app` tag of the workload.
    pub app: Option<String>,
    /// `env` tag of the workload.
    pub env: Option<String>,
    /// `owner` tag of the workload.
    pub owner: Option<String>,
}

/// An endpoint from the config's static targets (no agent reports it): one address, port
/// and name to present (`None`: no SNI), with the target's workload fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticEndpoint {
    pub address: IpAddr,
    pub port: u16,
    pub sni: Option<String>,
    /// `smtp`, `postgres`, ..., `none`; `None`: by the port.
    pub starttls: Option<String>,
    pub tags: WorkloadTags,
}

/// One lease of an endpoint. Its deadline tells it from any later lease of the same
/// endpoint (by the same worker too), so results and releases name the lease they belong
/// to, not just the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub endpoint: EndpointId,
    pub until: OffsetDateTime,
}

/// What [`ProbeQueue::record_leased_probe_results`](crate::ProbeQueue::record_leased_probe_results)
/// did with a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    /// Endpoints updated.
    pub recorded: u64,
    /// Endpoints whose result was stale (its lease had ended or been taken over): nothing
    /// of it was written.
    pub stale: Vec<EndpointId>,
}

impl LeasedEndpoint {
    /// The lease this endpoint was handed out under.
    pub fn lease(&self) -> Lease {
        Lease {
            endpoint: self.id,
            until: self.lease_until,
        }
    }

    /// The probe target: `host:port`, `[v6]:port`, with `@sni` when an SNI name is set.
    pub fn target(&self) -> String {
        let address = match self.address {
            IpAddr::V4(v4) => format!("{v4}:{}", self.port),
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.port),
        };
        match &self.sni {
            Some(sni) => format!("{address}@{sni}"),
            None => address,
        }
    }
}

/// A certificate as stored: the parsed columns the API filters and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// SHA-256 of the DER, 64 lowercase hex digits.
    pub sha256: String,
    /// Serial, normalized: lowercase hex, no separators, no leading zeros.
    pub serial: String,
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// SubjectAltName entries as the prober gave them.
    pub sans: Vec<String>,
    /// Public key summary.
    pub key: KeyInfo,
    /// Signature algorithm name.
    pub signature_algorithm: String,
    /// A CA certificate (basicConstraints CA).
    pub is_ca: bool,
    /// Self-signed.
    pub self_signed: bool,
    /// First and last time any endpoint was seen serving it.
    pub seen: Seen,
}

/// One certificate with everything the detail view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDetail {
    /// The certificate's columns.
    pub certificate: CertificateRecord,
    /// The certificate in PEM form, when a probe captured it.
    pub pem: Option<String>,
    /// The most recently seen chain containing it (SHA-256s, leaf first).
    pub chain: Vec<String>,
    /// Where it is or was served.
    pub served_at: Vec<ServedAt>,
}

/// One endpoint that served a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAt {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// SNI name sent, if any.
    pub sni: Option<String>,
    /// Position in the chain (0: leaf).
    pub position: u32,
    /// The endpoint's workload tags.
    pub tags: WorkloadTags,
    /// True when this is what the endpoint serves now (its latest observation).
    pub current: bool,
    /// First and last time served there.
    pub seen: Seen,
}

/// A certificate in use that expires within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCertificate {
    /// The certificate.
    pub certificate: CertificateRecord,
    /// Active endpoints serving it now.
    pub endpoints: u64,
}

/// Which endpoints [`ReadModel::endpoints`](crate::ReadModel::endpoints) lists. Every set field
/// must match; results come in id order, `limit` at a time, after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFilter {
    /// Exact address.
    pub address: Option<IpAddr>,
    /// Exact port.
    pub port: Option<u16>,
    /// `app` tag.
    pub app: Option<String>,
    /// `env` tag.
    pub env: Option<String>,
    /// Include retired endpoints too.
    pub include_retired: bool,
    /// Keyset cursor: only endpoints with a larger id.
    pub after: Option<EndpointId>,
    /// At most this many.
    pub limit: u32,
}

impl Default for EndpointFilter {
    fn default() -> Self {
        EndpointFilter {
            address: None,
            port: None,
            app: None,
            env: None,
            include_retired: false,
            after: None,
            limit: 100,
        }
    }
}

/// An endpoint with its current certificate and mTLS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// The endpoint's id.
    pub id: EndpointId,
    /// Address probed.
    pub address: String,
    /// Port probed.
    pub port: u16,
    /// SNI name sent, if any.
    pub sni: Option<String>,
    /// Name of the host that last reported it.
    pub hostname: Option<String>,
    /// Listening process name.
    pub process: Option<String>,
    /// Container, when in one.
    pub container: Option<String>,
    /// Workload tags.
    pub tags: WorkloadTags,
    /// The network zone it is probed from (`default` when in none).
    pub zone: String,
    /// First and last reported.
    pub seen: Seen,
    /// When it retired (not reported for the retention period).
    pub retired_at: Option<OffsetDateTime>,
    /// When it is next due for a probe.
    pub next_probe_at: OffsetDateTime,
    /// Failed probes in a row.
    pub failures: u32,
    /// Status of the last probe.
    pub last_status: Option<ProbeStatus>,
    /// Error of the last probe.
    pub last_error: Option<String>,
    /// When it was last probed.
    pub last_probed_at: Option<OffsetDateTime>,
    /// What it serves, as of the last probe that captured a chain.
    pub observation: Option<ObservationRecord>,
}

/// What an endpoint served: chain, TLS parameters, mTLS policy, findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRecord {
    /// The observation's id.
    pub id: i64,
    /// Status of the probes that saw it.
    pub status: ProbeStatus,
    /// The leaf certificate's SHA-256.
    pub leaf_sha256: Option<String>,
    /// The leaf certificate's subject.
    pub leaf_subject: Option<String>,
    /// The leaf certificate's end of validity.
    pub leaf_not_after: Option<OffsetDateTime>,
    /// Negotiated TLS parameters.
    pub tls: Option<TlsParameters>,
    /// Client-certificate policy.
    pub mtls: MtlsPolicy,
    /// Findings, sorted.
    pub findings: Vec<Finding>,
    /// First and last probe that saw exactly this.
    pub seen: Seen,
}

/// How an mTLS summary is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MtlsGrouping {
    /// By the workload's `app` tag.
    App,
    /// By the workload's `env` tag.
    Env,
}

impl MtlsGrouping {
    /// `app` or `env`: the grouping's name and its endpoint column.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsGrouping::App => "app",
            MtlsGrouping::Env => "env",
        }
    }
}

/// Endpoints by client-certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MtlsCounts {
    /// A client certificate is requested and required.
    pub required: u64,
    /// A client certificate is requested but the server goes on without one.
    pub optional: u64,
    /// No client certificate is requested.
    pub none: u64,
}

impl MtlsCounts {
    /// All endpoints counted.
    pub fn total(&self) -> u64 {
        self.required + self.optional + self.none
    }

    /// Share of endpoints that require a client certificate, 0.0 to 1.0.
    pub fn required_share(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.required as f64 / total as f64,
        }
    }
}

/// One group of an mTLS summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MtlsGroup {
    /// The tag value; `None` for endpoints without the tag.
    pub key: Option<String>,
    /// Its counts.
    pub counts: MtlsCounts,
}

/// One day of the adoption trend, all groups added up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MtlsDay {
    /// The day of the snapshot (UTC).
    pub day: Date,
    /// Its counts.
    pub counts: MtlsCounts,
}

/// mTLS adoption now, by group, and its daily trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsSummary {
    /// The grouping used.
    pub by: MtlsGrouping,
    /// Active endpoints with an observation, by group, in key order.
    pub groups: Vec<MtlsGroup>,
    /// Daily snapshots, oldest first.
    pub trend: Vec<MtlsDay>,
}

/// How much the store holds: for metrics, and for tests that check nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Hosts ever reported.
    pub hosts: u64,
    /// Endpoints, retired included.
    pub endpoints: u64,
    /// Endpoints not retired.
    pub active_endpoints: u64,
    /// Distinct certificates.
    pub certificates: u64,
    /// Distinct observations.
    pub observations: u64,
}
