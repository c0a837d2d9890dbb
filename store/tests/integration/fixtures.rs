//! Reports, certificates and probe results to feed the store.

use std::collections::BTreeMap;
use std::net::IpAddr;

use certfleet_model::{
    AgentInfo, AgentReport, CertificateInfo, HostInfo, KeyInfo, MtlsEnforcement, MtlsPolicy,
    ProbeResult, ProbeStatus, Protocol, SocketInfo, SocketScope, TlsParameters,
};
use certfleet_store::{AgentName, EndpointFilter, EndpointRecord, Store};
use time::{Duration, OffsetDateTime};

/// The agent name most tests report as.
pub fn agent() -> AgentName {
    AgentName::new("agent-test").expect("valid agent name")
}

/// An IP address from a literal.
pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal IP address")
}

/// A TCP socket reachable from the centre at its own address.
pub fn socket(address: &str, port: u16) -> SocketInfo {
    SocketInfo {
        address: ip(address),
        port,
        protocol: Protocol::Tcp,
        netns: Some(4026531840),
        process: Some("java".into()),
        container: None,
        tags: Default::default(),
        reachable: vec![ip(address)],
        scope: SocketScope::Host,
    }
}

/// A report from one host with the given tags (`key=value`) and sockets.
pub fn report(
    machine_id: &str,
    tags: &[(&str, &str)],
    sockets: Vec<SocketInfo>,
    collected_at: OffsetDateTime,
) -> AgentReport {
    let tags: BTreeMap<String, String> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AgentReport {
        agent: AgentInfo {
            version: "0.1.0".into(),
        },
        collected_at,
        host: HostInfo {
            hostname: format!("host-{machine_id}"),
            machine_id: machine_id.into(),
            namespace_addresses: Vec::new(),
            addresses: vec![ip("10.0.0.5")],
            tags,
        },
        sockets,
        probes: Vec::new(),
    }
}

/// A report of `count` sockets on consecutive ports of one address.
pub fn many_sockets(
    machine_id: &str,
    address: &str,
    count: u16,
    at: OffsetDateTime,
) -> AgentReport {
    let sockets = (1..=count).map(|port| socket(address, port)).collect();
    report(machine_id, &[("app", "bulk")], sockets, at)
}

/// A certificate whose SHA-256 is derived from `seed`.
pub fn certificate(
    seed: u64,
    sans: &[&str],
    subject: &str,
    not_after: OffsetDateTime,
) -> CertificateInfo {
    CertificateInfo {
        sha256: format!("{seed:064x}"),
        serial: format!("{:x}", 0xabc000 + seed),
        subject: subject.into(),
        issuer: "CN=Test Issuing CA,O=Example".into(),
        not_before: not_after - Duration::days(365),
        not_after,
        sans: sans.iter().map(|s| s.to_string()).collect(),
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

/// A successful probe that captured `chain`, with the given mTLS policy.
pub fn probe_ok(chain: Vec<CertificateInfo>, mtls: MtlsPolicy, at: OffsetDateTime) -> ProbeResult {
    ProbeResult {
        target: "10.0.0.5:443".into(),
        address: Some("10.0.0.5:443".into()),
        sni: None,
        status: ProbeStatus::Ok,
        error: None,
        probed_at: at,
        elapsed_ms: 12,
        starttls: None,
        tls: Some(TlsParameters {
            version: "TLSv1.3".into(),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: None,
            group: Some("X25519".into()),
            legacy: false,
        }),
        mtls: Some(mtls),
        chain,
        findings: vec![],
    }
}

/// A probe that failed with `status`.
pub fn probe_failed(status: ProbeStatus, at: OffsetDateTime) -> ProbeResult {
    ProbeResult {
        status,
        error: Some(format!("{} after 5s", status.as_str())),
        tls: None,
        mtls: None,
        chain: vec![],
        ..probe_ok(vec![], no_mtls(), at)
    }
}

/// No client certificate requested.
pub fn no_mtls() -> MtlsPolicy {
    MtlsPolicy::default()
}

/// A client certificate requested; `required` as given.
pub fn mtls(required: bool) -> MtlsPolicy {
    MtlsPolicy {
        requested: true,
        required: Some(required),
        ca_names: vec!["CN=Payments Client CA,O=Example".into()],
        enforced: required.then_some(MtlsEnforcement::Tls),
    }
}

/// Every endpoint (active or not), in id order.
pub async fn all_endpoints(store: &dyn Store) -> Vec<EndpointRecord> {
    let filter = EndpointFilter {
        include_retired: true,
        limit: 100_000,
        ..EndpointFilter::default()
    };
    store.endpoints(&filter).await.expect("endpoints list")
}
