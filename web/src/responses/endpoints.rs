//! Endpoints and sockets: list items and the detail.

use certfleet_model::{Finding, MtlsPolicy, ProbeStatus, TlsParameters};
use certfleet_store as store;
use serde::Serialize;
use time::OffsetDateTime;

use super::rfc3339;

/// An endpoint (address, port, SNI name) with its workload and current observation.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: i64,
    pub address: String,
    pub port: u16,
    /// SNI name sent; `null`: probed without one.
    pub sni: Option<String>,
    pub hostname: Option<String>,
    pub process: Option<String>,
    pub container: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub owner: Option<String>,
    /// The network zone whose probers probe it (`default` when in none).
    pub zone: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub retired_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub next_probe_at: OffsetDateTime,
    /// Probes failed in a row.
    pub failures: u32,
    pub last_status: Option<ProbeStatus>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub last_probed_at: Option<OffsetDateTime>,
    /// What it serves now; `null` before the first successful probe.
    pub observation: Option<Observation>,
}

impl From<store::EndpointRecord> for Endpoint {
    fn from(record: store::EndpointRecord) -> Self {
        Endpoint {
            id: record.id.0,
            address: record.address,
            port: record.port,
            sni: record.sni,
            hostname: record.hostname,
            process: record.process,
            container: record.container,
            app: record.tags.app,
            env: record.tags.env,
            owner: record.tags.owner,
            zone: record.zone,
            first_seen: record.seen.first_seen,
            last_seen: record.seen.last_seen,
            retired_at: record.retired_at,
            next_probe_at: record.next_probe_at,
            failures: record.failures,
            last_status: record.last_status,
            last_error: record.last_error,
            last_probed_at: record.last_probed_at,
            observation: record.observation.map(Observation::from),
        }
    }
}

/// What an endpoint served over a span of probes that saw the same thing.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub id: i64,
    pub status: ProbeStatus,
    pub leaf_sha256: Option<String>,
    pub leaf_subject: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub leaf_not_after: Option<OffsetDateTime>,
    pub tls: Option<TlsParameters>,
    pub mtls: MtlsPolicy,
    pub findings: Vec<Finding>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
}

impl From<store::ObservationRecord> for Observation {
    fn from(record: store::ObservationRecord) -> Self {
        Observation {
            id: record.id,
            status: record.status,
            leaf_sha256: record.leaf_sha256,
            leaf_subject: record.leaf_subject,
            leaf_not_after: record.leaf_not_after,
            tls: record.tls,
            mtls: record.mtls,
            findings: record.findings,
            first_seen: record.seen.first_seen,
            last_seen: record.seen.last_seen,
        }
    }
}

/// `GET /sockets`: a listening socket once, its other names nested.
#[derive(Debug, Clone, Serialize)]
pub struct Socket {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// At most 20 of the socket's other endpoints (its names).
    pub names: Vec<Endpoint>,
    pub names_total: u64,
}

impl From<store::SocketRecord> for Socket {
    fn from(record: store::SocketRecord) -> Self {
        Socket {
            endpoint: record.endpoint.into(),
            names: record.names.into_iter().map(Endpoint::from).collect(),
            names_total: record.names_total,
        }
    }
}

/// `GET /endpoints/{id}`: the endpoint, what it served before, and hosts that also claim
/// its socket.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointDetail {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Newest first.
    pub history: Vec<Observation>,
    pub conflicts: Vec<EndpointClaim>,
}

impl From<store::EndpointDetail> for EndpointDetail {
    fn from(detail: store::EndpointDetail) -> Self {
        EndpointDetail {
            endpoint: detail.endpoint.into(),
            history: detail.history.into_iter().map(Observation::from).collect(),
            conflicts: detail
                .conflicts
                .into_iter()
                .map(EndpointClaim::from)
                .collect(),
        }
    }
}

/// Another host that reported the same socket.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointClaim {
    pub hostname: String,
    pub machine_id: String,
    pub agent: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
}

impl From<store::EndpointClaim> for EndpointClaim {
    fn from(claim: store::EndpointClaim) -> Self {
        EndpointClaim {
            hostname: claim.hostname,
            machine_id: claim.machine_id,
            agent: claim.agent,
            first_seen: claim.seen.first_seen,
            last_seen: claim.seen.last_seen,
        }
    }
}

/// `202` to `POST /api/v1/endpoints/{id}/probe`: the endpoint is due now, ahead of the
/// schedule.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRequested {
    pub endpoint: i64,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub requested_at: OffsetDateTime,
    /// When a prober is expected to have recorded the new probe (a promise of the default
    /// settings, not a deadline: a busy prober takes longer).
    #[serde(serialize_with = "rfc3339::serialize")]
    pub expected_by: OffsetDateTime,
}
