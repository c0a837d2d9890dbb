//! A small fleet, seeded through the Store API as the service itself would: agent reports
//! (`ingest_report`), then probe results (`record_probe_results`) whose certificates are
//! real ones made here with rcgen and described by the prober's own analysis.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use certfleet_model::{
    AgentInfo, AgentReport, Finding, HostInfo, MtlsEnforcement, MtlsPolicy, ProbeResult,
    ProbeStatus, Protocol, SocketInfo, SocketScope, TlsParameters,
};
use certfleet_prober::analysis::{findings, Context, ServedCertificate};

use super::certs::{issue, Issued};
use certfleet_prober::TrustStore;
use certfleet_store::{AgentName, EndpointId, EndpointSearch, NotificationClaim, Store};
use time::{Duration, OffsetDateTime};

/// What [`Fleet::seed`] put in the store.
pub struct Fleet {
    pub ca: Issued,
    /// `api.example.test` (and `*.api.example.test`), serial 0A:1B:2C:3D:4E:5F:60, ten and
    /// a half days left; served with mTLS required at 10.1.0.10:443 (app billing, env
    /// prod, owner billing-team@example.com). Its notification failed to deliver.
    pub api: Issued,
    /// What 10.1.0.10:443 served twenty days ago, before `api`.
    pub api_old: Issued,
    /// `shop.example.test`, 200 days left, TLS 1.1 only, mTLS optional, at 10.1.0.11:443
    /// (app shop, env staging, owner shop-team@example.com).
    pub shop: Issued,
    /// `expired.example.test`, expired three days ago, still served at 10.1.0.12:8443
    /// (app billing).
    pub expired: Issued,
    /// A self-signed `weak.example.test` at 10.1.0.13:443 (app shop), reported with
    /// `weak_key` as the prober does for RSA-1024 (which rcgen cannot make).
    pub weak: Issued,
    pub api_endpoint: EndpointId,
    pub shop_endpoint: EndpointId,
    pub expired_endpoint: EndpointId,
    pub weak_endpoint: EndpointId,
    /// Five endpoints of app `bulk` on 10.1.0.20, ports 9001-9005, never probed.
    pub bulk: Vec<EndpointId>,
}

pub const API_SERIAL: [u8; 7] = [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60];
pub const BILLING_OWNER: &str = "billing-team@example.com";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal address")
}

fn report(hostname: &str, tags: &[(&str, &str)], sockets: &[(&str, u16)]) -> AgentReport {
    AgentReport {
        agent: AgentInfo {
            version: "0.1.0".into(),
        },
        collected_at: OffsetDateTime::now_utc(),
        host: HostInfo {
            hostname: hostname.into(),
            machine_id: format!("machine-{hostname}"),
            namespace_addresses: Vec::new(),
            addresses: sockets.iter().map(|(address, _)| ip(address)).collect(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        },
        sockets: sockets
            .iter()
            .map(|(address, port)| SocketInfo {
                address: ip(address),
                port: *port,
                protocol: Protocol::Tcp,
                netns: Some(4026531840),
                process: Some("nginx".into()),
                container: None,
                tags: Default::default(),
                reachable: vec![ip(address)],
                scope: SocketScope::Host,
            })
            .collect(),
        probes: Vec::new(),
    }
}

/// A probe of `target` that captured `chain`, with the findings the prober's analysis
/// gives (trusting the test CA), plus `extra` ones.
fn probe(
    (target, sni): (&str, &str),
    chain: &[&Issued],
    mtls: MtlsPolicy,
    legacy: bool,
    at: OffsetDateTime,
    trust: &TrustStore,
    extra: &[Finding],
) -> ProbeResult {
    let served: Vec<ServedCertificate> = chain
        .iter()
        .map(|issued| ServedCertificate::from_der(issued.der.clone()))
        .collect();
    let context = Context {
        sni: Some(sni),
        legacy_protocol: legacy,
        now: at,
        trust,
    };
    let mut found = findings(&served, &context);
    found.extend_from_slice(extra);
    found.sort();
    found.dedup();
    ProbeResult {
        target: target.into(),
        address: Some(target.into()),
        sni: Some(sni.into()),
        status: ProbeStatus::Ok,
        error: None,
        probed_at: at,
        elapsed_ms: 9,
        starttls: None,
        tls: Some(TlsParameters {
            version: if legacy { "TLSv1.1" } else { "TLSv1.3" }.into(),
            cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
            alpn: None,
            group: Some("X25519".into()),
            legacy,
        }),
        mtls: Some(mtls),
        chain: chain.iter().map(|issued| issued.info.clone()).collect(),
        findings: found,
    }
}

fn mtls(required: Option<bool>) -> MtlsPolicy {
    MtlsPolicy {
        requested: required.is_some(),
        required,
        ca_names: required
            .map(|_| vec!["CN=Client CA,O=Example".to_owned()])
            .unwrap_or_default(),
        enforced: (required == Some(true)).then_some(MtlsEnforcement::Tls),
    }
}

async fn endpoint_id(store: &Arc<dyn Store>, address: &str, port: u16) -> EndpointId {
    let search = EndpointSearch {
        address: Some(ip(address)),
        port: Some(port),
        limit: 1,
        ..EndpointSearch::default()
    };
    let found = store
        .search_endpoints(&search)
        .await
        .expect("endpoint search");
    found.first().expect("the endpoint was ingested").id
}

impl Fleet {
    pub async fn seed(store: &Arc<dyn Store>) -> Fleet {
        let now = OffsetDateTime::now_utc();
        let (year_ago, in_a_year) = (now - Duration::days(365), now + Duration::days(3650));
        let ca = issue("certfleet Test CA", &[], &[1], (year_ago, in_a_year), None);
        let lifetime = |left: Duration| (now - Duration::days(60), now + left);
        let api_left = Duration::days(10) + Duration::hours(12);
        let api_names = ["api.example.test", "*.api.example.test"];
        let api = issue(
            "api.example.test",
            &api_names,
            &API_SERIAL,
            lifetime(api_left),
            Some(&ca),
        );
        let api_old = issue(
            "api.example.test",
            &api_names,
            &[0x77, 0x01],
            lifetime(Duration::days(40)),
            Some(&ca),
        );
        let shop = issue(
            "shop.example.test",
            &["shop.example.test"],
            &[0x51, 0x02],
            lifetime(Duration::days(200)),
            Some(&ca),
        );
        let expired = issue(
            "expired.example.test",
            &["expired.example.test"],
            &[0x3e, 0x03],
            lifetime(-Duration::days(3)),
            Some(&ca),
        );
        let weak = issue(
            "weak.example.test",
            &["weak.example.test"],
            &[0x0e, 0x04],
            lifetime(Duration::days(300)),
            None,
        );

        let agent = AgentName::new("agent-seed").expect("agent name");
        let billing = [
            ("app", "billing"),
            ("env", "prod"),
            ("owner", BILLING_OWNER),
        ];
        let shop_tags = [
            ("app", "shop"),
            ("env", "staging"),
            ("owner", "shop-team@example.com"),
        ];
        let bulk_tags = [
            ("app", "bulk"),
            ("env", "dev"),
            ("owner", "bulk@example.com"),
        ];
        let bulk_sockets: Vec<(&str, u16)> =
            (9001..=9005).map(|port| ("10.1.0.20", port)).collect();
        for report in [
            report(
                "web-1",
                &billing,
                &[("10.1.0.10", 443), ("10.1.0.12", 8443)],
            ),
            report(
                "shop-1",
                &shop_tags,
                &[("10.1.0.11", 443), ("10.1.0.13", 443)],
            ),
            report("bulk-1", &bulk_tags, &bulk_sockets),
        ] {
            store
                .ingest_report(&agent, &report)
                .await
                .expect("report ingested");
        }
        let api_endpoint = endpoint_id(store, "10.1.0.10", 443).await;
        let shop_endpoint = endpoint_id(store, "10.1.0.11", 443).await;
        let expired_endpoint = endpoint_id(store, "10.1.0.12", 8443).await;
        let weak_endpoint = endpoint_id(store, "10.1.0.13", 443).await;
        let mut bulk = Vec::new();
        for port in 9001..=9005 {
            bulk.push(endpoint_id(store, "10.1.0.20", port).await);
        }

        let directory = tempfile::tempdir().expect("temporary directory");
        let ca_file = directory.path().join("ca.pem");
        std::fs::write(&ca_file, ca.certificate.pem()).expect("CA file written");
        let mut trust = TrustStore::empty();
        trust.add_pem_file(&ca_file).expect("CA trusted");

        let earlier = now - Duration::days(20);
        let old = probe(
            ("10.1.0.10:443", "api.example.test"),
            &[&api_old, &ca],
            mtls(Some(true)),
            false,
            earlier,
            &trust,
            &[],
        );
        store
            .record_probe_results(&[(api_endpoint, old)])
            .await
            .expect("old probe recorded");
        let results = vec![
            (
                api_endpoint,
                probe(
                    ("10.1.0.10:443", "api.example.test"),
                    &[&api, &ca],
                    mtls(Some(true)),
                    false,
                    now,
                    &trust,
                    &[],
                ),
            ),
            (
                shop_endpoint,
                probe(
                    ("10.1.0.11:443", "shop.example.test"),
                    &[&shop, &ca],
                    mtls(Some(false)),
                    true,
                    now,
                    &trust,
                    &[],
                ),
            ),
            (
                expired_endpoint,
                probe(
                    ("10.1.0.12:8443", "expired.example.test"),
                    &[&expired, &ca],
                    mtls(None),
                    false,
                    now,
                    &trust,
                    &[],
                ),
            ),
            (
                weak_endpoint,
                probe(
                    ("10.1.0.13:443", "weak.example.test"),
                    &[&weak],
                    mtls(None),
                    false,
                    now,
                    &trust,
                    &[Finding::WeakKey],
                ),
            ),
        ];
        store
            .record_probe_results(&results)
            .await
            .expect("probes recorded");
        store.snapshot_mtls_adoption().await.expect("snapshot");

        let claims = [
            NotificationClaim {
                sha256: api.info.sha256.clone(),
                owner: BILLING_OWNER.into(),
                threshold: "14d".into(),
            },
            NotificationClaim {
                sha256: expired.info.sha256.clone(),
                owner: BILLING_OWNER.into(),
                threshold: "expired".into(),
            },
        ];
        store.claim_notifications(&claims).await.expect("claimed");
        let open = store
            .open_notifications()
            .await
            .expect("open notifications");
        let id_of = |sha256: &str| {
            open.iter()
                .find(|n| n.sha256 == sha256)
                .map(|n| n.id)
                .expect("claimed notification")
        };
        store
            .notifications_failed(
                &[id_of(&api.info.sha256)],
                "550 mailbox unavailable",
                now + Duration::hours(1),
            )
            .await
            .expect("failure recorded");
        store
            .notifications_sent(&[id_of(&expired.info.sha256)])
            .await
            .expect("sent recorded");

        Fleet {
            ca,
            api,
            api_old,
            shop,
            expired,
            weak,
            api_endpoint,
            shop_endpoint,
            expired_endpoint,
            weak_endpoint,
            bulk,
        }
    }
}
