//! What a write will do, worked out before any SQL: both backends turn a report or a
//! batch of probe results into the same rows, then write them in a few statements.

use std::collections::BTreeMap;
use std::net::IpAddr;

use certfleet_model::text::escape_controls;
use certfleet_model::{
    AgentReport, CertificateInfo, MtlsEnforcement, ProbeResult, ProbeStatus, SocketInfo,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::records::{AgentName, EndpointId, IngestCounts, WorkloadTags};
use crate::zones::{check_zone_name, zone_of, Zone};
use certfleet_model::names::{certificate_names, normalize_serial};
use certfleet_model::schedule::{ProbeSchedule, Validity};

/// How far ahead of the server's clock an agent's `collected_at` may be (the web layer
/// refuses more; the store caps it, whoever calls it).
pub const MAX_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// How long a socket stays its host's after the host last reported it
/// (`certfleet_model::schedule::REPORT_WINDOW`).
pub use certfleet_model::schedule::REPORT_WINDOW;

/// A validated report, as rows.
pub(crate) struct ReportPlan {
    pub host: HostRow,
    pub endpoints: Vec<EndpointRow>,
    pub counts: IngestCounts,
}

/// The `hosts` row of a report.
pub(crate) struct HostRow {
    pub key: String,
    pub hostname: String,
    pub machine_id: String,
    pub agent: String,
    pub agent_version: String,
    pub addresses: String,
    pub tags: String,
    pub collected_at: OffsetDateTime,
    /// `collected_at`, but never later than the server's now: the time the report's
    /// endpoints count as seen. Using the report's own time keeps replays idempotent.
    pub seen_at: OffsetDateTime,
}

/// One distinct endpoint of a report, with its socket's tags merged over the host's.
pub(crate) struct EndpointRow {
    pub address: String,
    pub port: i32,
    pub process: Option<String>,
    pub container: Option<String>,
    pub netns: Option<i64>,
    pub tags: WorkloadTags,
    /// The Kubernetes namespace (`namespace` tag).
    pub namespace: Option<String>,
    /// The container's name (`container` tag), beside its id in `container`.
    pub container_name: Option<String>,
    /// Its network zone (see [`crate::zones`]).
    pub zone: String,
}

/// Validates a report and turns it into rows; endpoints are deduplicated by
/// (address, port), the first socket winning.
pub(crate) fn plan_report(
    agent: &AgentName,
    report: &AgentReport,
    zones: &[Zone],
    now: OffsetDateTime,
) -> Result<ReportPlan> {
    report.validate()?;
    let host_key = report.host_key();
    let host = HostRow {
        key: host_key,
        hostname: report.host.hostname.clone(),
        machine_id: report.host.machine_id.clone(),
        agent: agent.as_str().to_owned(),
        agent_version: report.agent.version.clone(),
        addresses: serde_json::to_string(&report.host.addresses)?,
        tags: serde_json::to_string(&report.host.tags)?,
        // A report from the future would make every honest later report look older
        // than the stored one (which then changes nothing): capped at now + skew.
        collected_at: report.collected_at.min(now + MAX_CLOCK_SKEW),
        seen_at: report.collected_at.min(now),
    };
    let mut endpoints: BTreeMap<(IpAddr, u16), EndpointRow> = BTreeMap::new();
    let mut skipped = 0;
    for (index, socket) in report.sockets.iter().enumerate() {
        // The socket's own tags (its container's) win over the host's, key by key.
        let zone_tag = report.socket_tag(socket, "zone");
        if let Some(zone) = zone_tag {
            let field = match socket.tags.get("zone").is_some_and(|own| !own.is_empty()) {
                true => format!("sockets[{index}].tags.zone"),
                false => "host.tags.zone".to_owned(),
            };
            check_zone_name(&field, zone)?;
        }
        let addresses = socket.probe_addresses();
        if addresses.is_empty() {
            skipped += 1;
        }
        for address in addresses {
            endpoints.entry((address, socket.port)).or_insert_with(|| {
                let zone = zone_of(zones, zone_tag, address);
                endpoint_row(report, socket, address.to_string(), zone)
            });
        }
    }
    let counts = IngestCounts {
        sockets: report.sockets.len() as u64,
        endpoints: endpoints.len() as u64,
        skipped,
        ..IngestCounts::default()
    };
    Ok(ReportPlan {
        host,
        endpoints: endpoints.into_values().collect(),
        counts,
    })
}

/// The endpoint of `socket` at `address` (as stored), with the socket's own tags (its
/// container's) over the host's, key by key.
pub(crate) fn endpoint_row(
    report: &AgentReport,
    socket: &SocketInfo,
    address: String,
    zone: String,
) -> EndpointRow {
    let tag = |key: &str| report.socket_tag(socket, key).map(str::to_owned);
    EndpointRow {
        address,
        port: i32::from(socket.port),
        process: socket.process.clone(),
        container: socket.container.clone(),
        netns: socket.netns.and_then(|netns| i64::try_from(netns).ok()),
        tags: WorkloadTags {
            app: tag("app"),
            env: tag("env"),
            owner: tag("owner"),
        },
        namespace: tag("namespace"),
        container_name: tag("container"),
        zone,
    }
}

/// A batch of probe results, as rows.
pub(crate) struct ProbeBatch {
    /// Distinct certificates of all chains.
    pub certificates: Vec<CertificateRow>,
    /// (name, sha256) pairs for the names table.
    pub names: Vec<(String, String)>,
    /// One per result that captured a chain.
    pub observations: Vec<ObservationRow>,
    /// One per endpoint, the last result winning.
    pub outcomes: Vec<Outcome>,
}

/// A `certificates` row.
pub(crate) struct CertificateRow {
    pub sha256: String,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sans: String,
    pub key_type: String,
    pub key_bits: i32,
    pub key_curve: Option<String>,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
    pub pem: Option<String>,
    /// SHA-1 of the DER, when the PEM is known (for lookups by SHA-1 fingerprint).
    pub sha1: Option<String>,
    pub seen_at: OffsetDateTime,
}

/// The negotiated TLS parameters of an observation as stored: text cleaned of control
/// characters, `None` where the probe did not get that far.
pub(crate) struct TlsColumns {
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    pub group: Option<String>,
    pub legacy: bool,
}

/// An `observations` row and its chain.
pub(crate) struct ObservationRow {
    pub endpoint_id: i64,
    pub fingerprint: String,
    pub status: &'static str,
    pub leaf_sha256: Option<String>,
    pub tls: TlsColumns,
    pub mtls_requested: bool,
    pub mtls_required: Option<bool>,
    pub mtls_enforced: Option<&'static str>,
    pub ca_names: String,
    pub findings: String,
    pub seen_at: OffsetDateTime,
    pub chain: Vec<String>,
}

/// How one probe changes its endpoint.
pub(crate) struct Outcome {
    pub endpoint_id: i64,
    pub status: ProbeStatus,
    pub error: Option<String>,
    pub probed_at: OffsetDateTime,
    /// The observation this probe produced, by fingerprint.
    pub fingerprint: Option<String>,
    /// Without a new observation: keep the previous one as current (a transient failure)
    /// or clear it (the port no longer speaks TLS, or it is no longer allowed).
    pub keep_previous: bool,
    /// The leaf this probe captured: SHA-256 and validity.
    pub leaf: Option<(String, Validity)>,
}

/// The `endpoints` update of one outcome, once failures and observation ids are known.
pub(crate) struct EndpointUpdate {
    pub id: i64,
    pub status: &'static str,
    pub error: Option<String>,
    pub probed_at: OffsetDateTime,
    pub failures: i32,
    pub next_probe_at: OffsetDateTime,
    pub observation_id: Option<i64>,
    pub keep_observation: bool,
    /// The current observation's leaf (SHA-256, end of validity), copied onto the
    /// endpoint so that expiry lists are one index range; kept with the observation.
    pub leaf_sha256: Option<String>,
    pub leaf_not_after: Option<OffsetDateTime>,
}

impl Outcome {
    /// The endpoint update, given the failures before this probe and the id of the
    /// observation it produced.
    pub fn update(
        &self,
        failures_before: u32,
        observation_id: Option<i64>,
        schedule: &ProbeSchedule,
        now: OffsetDateTime,
    ) -> EndpointUpdate {
        let failures = ProbeSchedule::failures_after(self.status, failures_before);
        let leaf = self.leaf.as_ref().filter(|_| observation_id.is_some());
        EndpointUpdate {
            id: self.endpoint_id,
            status: self.status.as_str(),
            error: self.error.clone(),
            probed_at: self.probed_at,
            failures: i32::try_from(failures).unwrap_or(i32::MAX),
            next_probe_at: schedule.next_probe_at(
                self.endpoint_id,
                self.status,
                failures,
                now,
                self.leaf.as_ref().map(|(_, validity)| *validity),
            ),
            observation_id,
            keep_observation: observation_id.is_none() && self.keep_previous,
            leaf_sha256: leaf.map(|(sha256, _)| sha256.clone()),
            leaf_not_after: leaf.map(|(_, validity)| validity.not_after),
        }
    }
}

/// Checks and converts a batch of probe results.
pub(crate) fn plan_probes(results: &[(EndpointId, ProbeResult)]) -> Result<ProbeBatch> {
    let mut certificates: BTreeMap<String, CertificateRow> = BTreeMap::new();
    let mut names = Vec::new();
    let mut observations: BTreeMap<(i64, String), ObservationRow> = BTreeMap::new();
    let mut outcomes: BTreeMap<i64, Outcome> = BTreeMap::new();
    for (index, (EndpointId(endpoint_id), result)) in results.iter().enumerate() {
        for (position, info) in result.chain.iter().enumerate() {
            let field = || format!("results[{index}].chain[{position}].sha256");
            let row = certificate_row(info, result.probed_at, field)?;
            for name in certificate_names(&info.sans, &row.subject) {
                names.push((clean(&name), row.sha256.clone()));
            }
            merge_certificate(&mut certificates, row);
        }
        let observation = observation_row(*endpoint_id, result)?;
        let fingerprint = observation.as_ref().map(|o| o.fingerprint.clone());
        if let Some(observation) = observation {
            let key = (observation.endpoint_id, observation.fingerprint.clone());
            observations.insert(key, observation);
        }
        let keep_previous = !matches!(result.status, ProbeStatus::NotTls | ProbeStatus::Denied);
        let outcome = Outcome {
            endpoint_id: *endpoint_id,
            status: result.status,
            error: clean_opt(&result.error),
            probed_at: result.probed_at,
            fingerprint,
            keep_previous,
            leaf: result.chain.first().map(|leaf| {
                let validity = Validity {
                    not_before: leaf.not_before,
                    not_after: leaf.not_after,
                };
                (leaf.sha256.to_ascii_lowercase(), validity)
            }),
        };
        outcomes.insert(*endpoint_id, outcome);
    }
    names.sort();
    names.dedup();
    Ok(ProbeBatch {
        certificates: certificates.into_values().collect(),
        names,
        observations: observations.into_values().collect(),
        outcomes: outcomes.into_values().collect(),
    })
}

fn certificate_row(
    info: &CertificateInfo,
    seen_at: OffsetDateTime,
    field: impl Fn() -> String,
) -> Result<CertificateRow> {
    let sha256 = info.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(field(), "must be 64 hex digits"));
    }
    Ok(CertificateRow {
        sha256,
        serial: normalize_serial(&info.serial).unwrap_or_default(),
        subject: clean(&info.subject),
        issuer: clean(&info.issuer),
        not_before: info.not_before,
        not_after: info.not_after,
        sans: serde_json::to_string(&info.sans.iter().map(|san| clean(san)).collect::<Vec<_>>())?,
        key_type: clean(&info.key.kind),
        key_bits: i32::try_from(info.key.bits).unwrap_or(i32::MAX),
        key_curve: clean_opt(&info.key.curve),
        signature_algorithm: clean(&info.signature_algorithm),
        is_ca: info.is_ca,
        self_signed: info.self_signed,
        pem: info.pem.clone(),
        sha1: info.pem.as_deref().and_then(sha1_of_pem),
        seen_at,
    })
}

/// SHA-1 of the DER inside a PEM certificate, 40 lowercase hex digits; `None` when the
/// PEM cannot be decoded.
fn sha1_of_pem(pem: &str) -> Option<String> {
    let der = der_of_pem(pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Some(hex::encode(digest.as_ref()))
}

/// The DER inside a PEM certificate; `None` when it cannot be decoded.
pub(crate) fn der_of_pem(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
}

/// Keeps one row per certificate: the latest sighting, and a PEM if any result had one.
fn merge_certificate(certificates: &mut BTreeMap<String, CertificateRow>, row: CertificateRow) {
    match certificates.get_mut(&row.sha256) {
        Some(existing) => {
            existing.seen_at = existing.seen_at.max(row.seen_at);
            if existing.pem.is_none() {
                existing.pem = row.pem;
                existing.sha1 = row.sha1;
            }
        }
        None => {
            certificates.insert(row.sha256.clone(), row);
        }
    }
}

/// The observation of a result that captured a chain; `None` for one that did not.
fn observation_row(endpoint_id: i64, result: &ProbeResult) -> Result<Option<ObservationRow>> {
    if result.chain.is_empty() {
        return Ok(None);
    }
    let chain: Vec<String> = result
        .chain
        .iter()
        .map(|c| c.sha256.to_ascii_lowercase())
        .collect();
    let mtls = result.mtls.clone().unwrap_or_default();
    let mut findings = result.findings.clone();
    findings.sort();
    findings.dedup();
    let tls = result.tls.as_ref();
    // Everything that makes two probes "the same", and nothing that varies between
    // identical probes (time, elapsed, error wording).
    let identity = serde_json::json!({
        "status": result.status,
        "sni": result.sni,
        "starttls": result.starttls,
        "chain": chain,
        "tls": result.tls,
        "mtls": mtls,
        "findings": findings,
    });
    let fingerprint = hex::encode(Sha256::digest(identity.to_string().as_bytes()));
    Ok(Some(ObservationRow {
        endpoint_id,
        fingerprint,
        status: result.status.as_str(),
        leaf_sha256: chain.first().cloned(),
        tls: TlsColumns {
            version: tls.map(|t| clean(&t.version)),
            cipher: tls.and_then(|t| clean_opt(&t.cipher)),
            alpn: tls.and_then(|t| clean_opt(&t.alpn)),
            group: tls.and_then(|t| clean_opt(&t.group)),
            legacy: tls.is_some_and(|t| t.legacy),
        },
        mtls_requested: mtls.requested,
        mtls_required: mtls.required,
        mtls_enforced: mtls.enforced.map(MtlsEnforcement::as_str),
        ca_names: serde_json::to_string(
            &mtls
                .ca_names
                .iter()
                .map(|name| clean(name))
                .collect::<Vec<_>>(),
        )?,
        findings: serde_json::to_string(&findings)?,
        seen_at: result.probed_at,
        chain,
    }))
}

/// Text from a probe result as stored: control characters escaped
/// ([`certfleet_model::text`]). The prober already escapes what it reads; this holds for
/// results from anywhere (a NUL would abort a PostgreSQL batch, a newline forge mail lines).
fn clean(text: &str) -> String {
    escape_controls(text).into_owned()
}

fn clean_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(clean)
}
