//! Feeding the store as agents and probers would: a report per host, then a probe result
//! with the chain (CertificateInfo values with chosen expiry dates).

use certfleet_model::{
    AgentInfo, AgentReport, CertificateInfo, HostInfo, KeyInfo, MtlsPolicy, ProbeResult,
    ProbeStatus, Protocol, SocketInfo, SocketScope, TlsParameters,
};
use certfleet_store::{AgentName, EndpointId, Store};
use time::{Duration, OffsetDateTime};

/// A certificate named `name`, valid for `lifetime` up to `not_after`; its SHA-256 and
/// serial derive from `seed`.
pub fn certificate(
    seed: u64,
    name: &str,
    not_after: OffsetDateTime,
    lifetime: Duration,
) -> CertificateInfo {
    CertificateInfo {
        sha256: format!("{seed:064x}"),
        serial: format!("{:x}", 0x5e_0000 + seed),
        subject: format!("CN={name},O=Example"),
        issuer: "CN=Example Issuing CA,O=Example".into(),
        not_before: not_after - lifetime,
        not_after,
        sans: vec![name.to_owned()],
        key: KeyInfo {
            kind: "ecdsa".into(),
            bits: 256,
            curve: Some("P-256".into()),
        },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        self_signed: false,
        parse_error: None,
        pem: None,
    }
}

/// A year-long leaf certificate expiring `left` from `now`.
pub fn leaf(seed: u64, name: &str, now: OffsetDateTime, left: Duration) -> CertificateInfo {
    certificate(seed, name, now + left, Duration::days(365))
}

/// A host reporting TCP listeners on `address` at `ports`, with workload `tags`.
pub struct Host<'a> {
    pub hostname: &'a str,
    pub address: &'a str,
    pub tags: &'a [(&'a str, &'a str)],
}

impl Host<'_> {
    /// Reports the host with one listener per port, then records a probe of each port
    /// serving its chain. Returns the endpoint ids, in port order.
    pub async fn serves(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
        served: Vec<(u16, Vec<CertificateInfo>)>,
    ) -> Vec<EndpointId> {
        let address = self.address.parse().expect("literal address");
        let sockets = served
            .iter()
            .map(|(port, _)| SocketInfo {
                address,
                port: *port,
                protocol: Protocol::Tcp,
                netns: None,
                process: Some("nginx".into()),
                container: None,
                tags: Default::default(),
                reachable: vec![address],
                scope: SocketScope::Host,
            })
            .collect();
        let report = AgentReport {
            agent: AgentInfo {
                version: "0.1.0".into(),
            },
            collected_at: now,
            host: HostInfo {
                hostname: self.hostname.into(),
                machine_id: format!("machine-{}", self.hostname),
                namespace_addresses: Vec::new(),
                addresses: vec![address],
                tags: self
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            sockets,
            probes: Vec::new(),
        };
        let agent = AgentName::new("agent-test").expect("valid agent name");
        store
            .ingest_report(&agent, &report)
            .await
            .expect("report ingested");
        let leased = store
            .lease_due_endpoints("prober-test", 10_000, Duration::minutes(5))
            .await
            .expect("endpoints leased");
        let mut results = Vec::new();
        let mut ids = Vec::new();
        for (port, chain) in served {
            let lease = leased
                .iter()
                .find(|l| l.address == address && l.port == port)
                .expect("the reported endpoint is due");
            ids.push(lease.id);
            results.push((lease.id, probe(&lease.target(), chain, now)));
        }
        store
            .record_probe_results(&results)
            .await
            .expect("probe results recorded");
        ids
    }
}

/// The endpoint now serves `chain` (a renewal or a rotation).
pub async fn reprobe(
    store: &dyn Store,
    endpoint: EndpointId,
    chain: Vec<CertificateInfo>,
    now: OffsetDateTime,
) {
    let result = probe("10.0.0.1:443", chain, now);
    store
        .record_probe_results(&[(endpoint, result)])
        .await
        .expect("probe recorded");
}

fn probe(target: &str, chain: Vec<CertificateInfo>, now: OffsetDateTime) -> ProbeResult {
    ProbeResult {
        target: target.into(),
        address: Some(target.into()),
        sni: None,
        status: ProbeStatus::Ok,
        error: None,
        probed_at: now,
        elapsed_ms: 3,
        starttls: None,
        tls: Some(TlsParameters {
            version: "TLSv1.3".into(),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: None,
            group: Some("X25519".into()),
            legacy: false,
        }),
        mtls: Some(MtlsPolicy::default()),
        chain,
        findings: vec![],
    }
}
