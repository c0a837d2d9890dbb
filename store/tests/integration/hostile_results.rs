//! Hostile probe results: control characters in every certificate string, and one bad
//! result in a batch of good ones. The prober escapes what it reads; these results come
//! as a hostile source would send them, to show that the store holds on its own.

use certfleet_model::AgentReport;
use certfleet_model::{ProbeResult, ProbeStatus};
use certfleet_store::{CertificateLookup, CertificateSearch, EndpointId, LeasedEndpoint};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    control_characters_are_stored_escaped_never_fatal,
    one_bad_result_costs_no_other_result_of_its_batch,
    a_live_hosts_endpoint_is_claimed_not_taken_until_it_stops_reporting,
    a_host_stands_for_a_bounded_number_of_endpoints,
    a_report_from_the_future_is_capped,
    an_operator_settles_a_conflict,
);

/// Ingests `count` endpoints on one address and leases them all.
async fn leased(t: &TestStore, count: u16) -> Vec<LeasedEndpoint> {
    let report = many_sockets("m1", "10.0.0.5", count, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let leased = t
        .store
        .lease_due_endpoints("w", u32::from(count), Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), usize::from(count));
    leased
}

async fn control_characters_are_stored_escaped_never_fatal(t: TestStore) {
    let endpoints = leased(&t, 2).await;
    let expiry = t.clock.now() + Duration::days(60);
    let mut hostile = certificate(
        7,
        &["a\0b.test", "line\r\nBcc: victim@example.com", "ok.test"],
        "CN=evil\0\n.test,O=Example",
        expiry,
    );
    hostile.issuer = "CN=Issuer\u{1b}[31m".into();
    let mut result = probe_ok(vec![hostile.clone()], mtls(false), t.clock.now());
    if let Some(mtls) = result.mtls.as_mut() {
        mtls.ca_names = vec!["CN=ca\0name".into()];
    }
    let good = probe_ok(
        vec![certificate(8, &["good.test"], "CN=good.test", expiry)],
        no_mtls(),
        t.clock.now(),
    );

    let updated = t
        .store
        .record_probe_results(&[(endpoints[0].id, result), (endpoints[1].id, good)])
        .await
        .expect("a NUL in a SAN is data, not an error");

    assert_eq!(updated, 2);
    let detail = t.store.certificate(&hostile.sha256).await.expect("stored");
    assert_eq!(
        detail.certificate.sans,
        vec![
            "a\\00b.test".to_owned(),
            "line\\0d\\0aBcc: victim@example.com".to_owned(),
            "ok.test".to_owned()
        ]
    );
    assert_eq!(detail.certificate.subject, "CN=evil\\00\\0a.test,O=Example");
    assert_eq!(detail.certificate.issuer, "CN=Issuer\\1b[31m");
    let found = t
        .store
        .search_certificates(&CertificateSearch {
            lookup: CertificateLookup::Hostname("ok.test".into()),
            after: None,
            limit: 10,
        })
        .await
        .expect("lookup");
    assert_eq!(found.len(), 1, "the hostile certificate's good names index");
    let endpoint = all_endpoints(&*t.store)
        .await
        .into_iter()
        .find(|e| e.id == endpoints[0].id)
        .expect("endpoint");
    let observation = endpoint.observation.expect("recorded");
    assert_eq!(observation.mtls.ca_names, vec!["CN=ca\\00name".to_owned()]);
}

async fn one_bad_result_costs_no_other_result_of_its_batch(t: TestStore) {
    let endpoints = leased(&t, 8).await;
    let expiry = t.clock.now() + Duration::days(60);
    let mut batch: Vec<(EndpointId, ProbeResult)> = endpoints
        .iter()
        .enumerate()
        .map(|(index, lease)| {
            let seed = 100 + index as u64;
            let leaf = certificate(seed, &[&format!("s{index}.test")], "CN=s.test", expiry);
            (lease.id, probe_ok(vec![leaf], no_mtls(), t.clock.now()))
        })
        .collect();
    // A result the store cannot take: its leaf's fingerprint is not 64 hex digits.
    let poisoned = endpoints[5].id;
    batch[5].1.chain[0].sha256 = "not-a-fingerprint".into();

    let updated = t
        .store
        .record_probe_results(&batch)
        .await
        .expect("the batch is recorded around its bad result");

    assert_eq!(updated, 8, "seven results and the error of the eighth");
    let leased_ids: Vec<EndpointId> = endpoints.iter().map(|lease| lease.id).collect();
    let recorded = all_endpoints(&*t.store).await;
    // Only the leased endpoints: the names the results revealed are new endpoints.
    for endpoint in recorded.into_iter().filter(|e| leased_ids.contains(&e.id)) {
        if endpoint.id == poisoned {
            assert_eq!(endpoint.last_status, Some(ProbeStatus::TlsError));
            let error = endpoint.last_error.unwrap_or_default();
            assert!(
                error.contains("could not be stored") && error.contains("sha256"),
                "the bad result says why: {error}"
            );
            assert!(endpoint.observation.is_none());
            assert!(
                endpoint.next_probe_at > t.clock.now(),
                "not leased again at once"
            );
        } else {
            assert_eq!(endpoint.last_status, Some(ProbeStatus::Ok), "{endpoint:?}");
            assert!(endpoint.observation.is_some());
        }
    }
}

/// A report of host `machine` with sockets on `ports` of 10.0.0.5.
fn ports_report(
    t: &TestStore,
    machine: &str,
    owner: &str,
    ports: std::ops::Range<u16>,
) -> AgentReport {
    let sockets = ports.map(|port| socket("10.0.0.5", port)).collect();
    report(machine, &[("owner", owner)], sockets, t.clock.now())
}

async fn a_live_hosts_endpoint_is_claimed_not_taken_until_it_stops_reporting(t: TestStore) {
    let a = ports_report(&t, "host-a", "a@example.com", 443..444);
    let counts = t.store.ingest_report(&agent(), &a).await.expect("ingests");
    assert_eq!(counts.conflicts, 0);
    t.clock.advance(Duration::minutes(10));
    let b = ports_report(&t, "host-b", "b@example.com", 443..444);
    let counts = t.store.ingest_report(&agent(), &b).await.expect("ingests");
    assert_eq!(counts.conflicts, 1, "B's claim is kept as a conflict");
    let endpoint = all_endpoints(&*t.store).await.remove(0);
    assert_eq!(endpoint.tags.owner.as_deref(), Some("a@example.com"));
    let detail = t.store.endpoint(endpoint.id).await.expect("detail");
    assert_eq!(detail.conflicts.len(), 1);
    assert_eq!(detail.conflicts[0].hostname, "host-host-b");
    let overview = t.store.fleet_overview().await.expect("overview");
    assert_eq!(overview.endpoint_conflicts, 1);

    // A keeps reporting: still A's. Then A stops; after the claim window B takes over.
    t.clock.advance(Duration::minutes(50));
    let a = ports_report(&t, "host-a", "a@example.com", 443..444);
    t.store.ingest_report(&agent(), &a).await.expect("ingests");
    t.clock.advance(Duration::hours(3));
    let b = ports_report(&t, "host-b", "b@example.com", 443..444);
    let counts = t.store.ingest_report(&agent(), &b).await.expect("ingests");
    assert_eq!(counts.conflicts, 0, "A stopped: no conflict any more");
    let endpoint = all_endpoints(&*t.store).await.remove(0);
    assert_eq!(endpoint.tags.owner.as_deref(), Some("b@example.com"));
    let detail = t.store.endpoint(endpoint.id).await.expect("detail");
    assert!(
        detail.conflicts.is_empty(),
        "settled: {:?}",
        detail.conflicts
    );
}

async fn a_host_stands_for_a_bounded_number_of_endpoints(t: TestStore) {
    let first = ports_report(&t, "big", "big@example.com", 1..10_001);
    t.store
        .ingest_report(&agent(), &first)
        .await
        .expect("ingests");
    t.clock.advance(Duration::minutes(1));
    let more = ports_report(&t, "big", "big@example.com", 10_001..13_001);
    let error = t
        .store
        .ingest_report(&agent(), &more)
        .await
        .expect_err("13,000 endpoints for one host is past the bound");
    assert!(
        matches!(&error, certfleet_store::Error::Invalid { field, .. } if field == "sockets"),
        "{error:?}"
    );
    assert_eq!(
        all_endpoints(&*t.store).await.len(),
        10_000,
        "nothing of it stored"
    );
    let other = ports_report(&t, "small", "small@example.com", 20_001..23_001);
    t.store
        .ingest_report(&agent(), &other)
        .await
        .expect("another host is not bound by it");
}

async fn a_report_from_the_future_is_capped(t: TestStore) {
    let mut future = ports_report(&t, "m1", "frozen@example.com", 443..444);
    future.collected_at = time::macros::datetime!(9999-12-31 00:00:00 UTC);
    t.store
        .ingest_report(&agent(), &future)
        .await
        .expect("ingests, capped");
    t.clock.advance(Duration::hours(1));
    let honest = ports_report(&t, "m1", "honest@example.com", 443..444);
    t.store
        .ingest_report(&agent(), &honest)
        .await
        .expect("ingests");
    let endpoint = all_endpoints(&*t.store).await.remove(0);
    assert_eq!(
        endpoint.tags.owner.as_deref(),
        Some("honest@example.com"),
        "a later honest report still counts"
    );
}

async fn an_operator_settles_a_conflict(t: TestStore) {
    let a = ports_report(&t, "host-a", "a@example.com", 443..445);
    t.store.ingest_report(&agent(), &a).await.expect("ingests");
    let b = ports_report(&t, "host-b", "b@example.com", 443..445);
    t.store.ingest_report(&agent(), &b).await.expect("ingests");
    let endpoints = all_endpoints(&*t.store).await;
    let (first, second) = (endpoints[0].id, endpoints[1].id);

    let unknown = t.store.settle_conflict(first, Some("host-c")).await;
    assert!(
        matches!(unknown, Err(e) if e.is_not_found()),
        "no claim of host-c"
    );
    assert_eq!(
        t.store
            .settle_conflict(first, Some("host-b"))
            .await
            .expect("settles"),
        1
    );
    assert_eq!(
        t.store
            .settle_conflict(second, None)
            .await
            .expect("dismissed"),
        1
    );

    let endpoints = all_endpoints(&*t.store).await;
    assert_eq!(
        endpoints[0].tags.owner.as_deref(),
        Some("b@example.com"),
        "given to B"
    );
    assert!(
        endpoints[0].next_probe_at <= t.clock.now(),
        "due at once for its new host"
    );
    assert_eq!(
        endpoints[1].tags.owner.as_deref(),
        Some("a@example.com"),
        "kept by A"
    );
    let overview = t.store.fleet_overview().await.expect("overview");
    assert_eq!(overview.endpoint_conflicts, 0);
}
