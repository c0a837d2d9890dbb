//! Agent-side probing: a report's own probe results (`probes`) are recorded like a
//! prober's on the host's own endpoints, never on another host's, and such endpoints are
//! the agent's to probe (no lease, no probe now) until the agent stops.

use base64::Engine;
use certfleet_model::{AgentReport, ProbeResult, Protocol, SocketInfo, SocketScope};
use certfleet_store::{EndpointRecord, ProbeRequest};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    loopback_results_are_recorded_under_their_own_host_and_never_leased,
    results_for_sockets_the_report_does_not_list_are_refused_one_by_one,
    a_result_for_an_endpoint_another_live_host_holds_is_refused,
    an_agent_probed_endpoint_goes_back_to_the_probers_when_the_agent_stops,
    a_pem_that_is_not_its_sha256_is_refused,
);

fn loopback(port: u16) -> SocketInfo {
    SocketInfo {
        address: ip("127.0.0.1"),
        port,
        protocol: Protocol::Tcp,
        netns: Some(4026531840),
        process: Some("vault".into()),
        container: None,
        tags: Default::default(),
        reachable: Vec::new(),
        scope: SocketScope::Loopback,
    }
}

/// A successful probe of `target` that saw the certificate of `seed`.
fn probed(target: &str, seed: u64, at: OffsetDateTime) -> ProbeResult {
    let leaf = certificate(
        seed,
        &["vault.internal"],
        "CN=vault",
        at + Duration::days(90),
    );
    ProbeResult {
        target: target.into(),
        address: Some(target.into()),
        ..probe_ok(vec![leaf], no_mtls(), at)
    }
}

fn with_probes(mut report: AgentReport, probes: Vec<ProbeResult>) -> AgentReport {
    report.probes = probes;
    report
}

async fn endpoint_at(t: &TestStore, address_prefix: &str, port: u16) -> Vec<EndpointRecord> {
    all_endpoints(&*t.store)
        .await
        .into_iter()
        .filter(|e| e.address.starts_with(address_prefix) && e.port == port)
        .collect()
}

fn leaf(endpoint: &EndpointRecord) -> Option<String> {
    endpoint
        .observation
        .as_ref()
        .and_then(|o| o.leaf_sha256.clone())
}

async fn loopback_results_are_recorded_under_their_own_host_and_never_leased(t: TestStore) {
    let now = t.clock.now();
    for (machine, seed) in [("m1", 1), ("m2", 2)] {
        let report = report(machine, &[("app", "vault")], vec![loopback(8200)], now);
        let report = with_probes(report, vec![probed("127.0.0.1:8200", seed, now)]);
        let counts = t
            .store
            .ingest_report(&agent(), &report)
            .await
            .expect("ingests");
        assert_eq!((counts.probes, counts.probes_refused), (1, 0));
    }
    let endpoints = endpoint_at(&t, "127.0.0.1%", 8200).await;
    assert_eq!(endpoints.len(), 2, "one per host: {endpoints:?}");
    let mut leaves: Vec<Option<String>> = endpoints.iter().map(leaf).collect();
    leaves.sort();
    assert_eq!(
        leaves,
        [Some(format!("{:064x}", 1)), Some(format!("{:064x}", 2))]
    );
    assert!(endpoints
        .iter()
        .all(|e| e.tags.app.as_deref() == Some("vault")));

    t.clock.advance(Duration::days(3));
    let leased = t
        .store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(leased.is_empty(), "never a prober's: {leased:?}");
    let asked = t
        .store
        .request_probe(endpoints[0].id, Duration::seconds(60))
        .await
        .expect("asks");
    assert!(
        matches!(asked, ProbeRequest::ProbedByAgent { ref hostname } if hostname.starts_with("host-")),
        "{asked:?}"
    );
    // The same report again changes nothing.
    let report = report("m1", &[("app", "vault")], vec![loopback(8200)], now);
    let report = with_probes(report, vec![probed("127.0.0.1:8200", 1, now)]);
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    assert_eq!(endpoint_at(&t, "127.0.0.1%", 8200).await.len(), 2);
}

async fn results_for_sockets_the_report_does_not_list_are_refused_one_by_one(t: TestStore) {
    let now = t.clock.now();
    let sockets = vec![loopback(8200), socket("10.0.0.5", 443)];
    let report = report("m1", &[], sockets, now);
    let report = with_probes(
        report,
        vec![
            probed("10.9.9.9:443", 3, now),
            probed("127.0.0.1:9999", 4, now),
            probed("127.0.0.1:8200", 5, now),
        ],
    );
    let counts = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    assert_eq!((counts.probes, counts.probes_refused), (1, 2));
    assert_eq!(endpoint_at(&t, "10.9.9.9", 443).await.len(), 0);
    assert_eq!(endpoint_at(&t, "127.0.0.1%", 9999).await.len(), 0);
    let kept = endpoint_at(&t, "127.0.0.1%", 8200).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(leaf(&kept[0]), Some(format!("{:064x}", 5)));
}

async fn a_result_for_an_endpoint_another_live_host_holds_is_refused(t: TestStore) {
    let now = t.clock.now();
    let owner = report("m1", &[], vec![socket("10.0.0.5", 443)], now);
    t.store
        .ingest_report(&agent(), &owner)
        .await
        .expect("ingests");
    // m2 claims m1's address as its own, and a result for it.
    let hostile = report("m2", &[], vec![socket("10.0.0.5", 443)], now);
    let hostile = with_probes(hostile, vec![probed("10.0.0.5:443", 6, now)]);
    let counts = t
        .store
        .ingest_report(&agent(), &hostile)
        .await
        .expect("ingests");
    assert_eq!(counts.conflicts, 1);
    assert_eq!((counts.probes, counts.probes_refused), (0, 1));
    let endpoint = &endpoint_at(&t, "10.0.0.5", 443).await[0];
    assert_eq!(
        endpoint.last_status, None,
        "nothing recorded on m1's endpoint"
    );
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1, "still the probers'");
}

async fn an_agent_probed_endpoint_goes_back_to_the_probers_when_the_agent_stops(t: TestStore) {
    let now = t.clock.now();
    let sockets = || vec![socket("10.0.0.5", 443)];
    let probing = with_probes(
        report("m1", &[], sockets(), now),
        vec![probed("10.0.0.5:443", 7, now)],
    );
    let counts = t
        .store
        .ingest_report(&agent(), &probing)
        .await
        .expect("ingests");
    assert_eq!(counts.probes, 1);
    let endpoint = endpoint_at(&t, "10.0.0.5", 443).await.remove(0);
    assert_eq!(leaf(&endpoint), Some(format!("{:064x}", 7)));
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(leased.is_empty(), "the agent's: {leased:?}");

    t.clock.advance(Duration::hours(1));
    let plain = report("m1", &[], sockets(), t.clock.now());
    let counts = t
        .store
        .ingest_report(&agent(), &plain)
        .await
        .expect("ingests");
    assert_eq!((counts.probes, counts.probes_refused), (0, 0));
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    let ids: Vec<_> = leased.iter().map(|lease| lease.id).collect();
    assert_eq!(ids, vec![endpoint.id], "due at once for the probers");
}

async fn a_pem_that_is_not_its_sha256_is_refused(t: TestStore) {
    let now = t.clock.now();
    let der = b"not really a certificate".to_vec();
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
    let mut honest = probed("127.0.0.1:8200", 0, now);
    honest.chain[0].sha256 = hex::encode(Sha256::digest(&der));
    honest.chain[0].pem = Some(pem.clone());
    let mut forged = probed("127.0.0.1:8201", 9, now);
    forged.chain[0].pem = Some(pem);
    let report = report("m1", &[], vec![loopback(8200), loopback(8201)], now);
    let report = with_probes(report, vec![honest, forged]);
    let counts = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    assert_eq!((counts.probes, counts.probes_refused), (1, 1));
    assert_eq!(endpoint_at(&t, "127.0.0.1%", 8201).await.len(), 0);
}
