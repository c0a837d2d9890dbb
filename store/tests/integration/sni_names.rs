//! Names to present: recording results creates an endpoint per name known (the
//! workload's hostname, the DNS names of the served leaf), due at once; never an IP, never
//! a wildcard, at most eight per address and port.

use std::collections::BTreeSet;

use certfleet_model::ProbeStatus;
use certfleet_store::{EndpointId, LeasedEndpoint};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    names_of_the_host_and_the_certificate_become_endpoints_due_at_once,
    named_endpoints_are_bounded_per_address_and_port,
    learnt_names_are_presented_too_but_never_an_address,
    named_endpoints_live_as_long_as_the_endpoint_that_names_them,
);

async fn lease_all(t: &TestStore) -> Vec<LeasedEndpoint> {
    t.store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease")
}

async fn names_of_the_host_and_the_certificate_become_endpoints_due_at_once(t: TestStore) {
    let report = report("m1", &[], vec![socket("10.0.0.5", 443)], t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingest");
    let plain = lease_all(&t).await.pop().expect("the endpoint is due");
    let sans = [
        "api.example.com",
        "*.example.com",
        "10.0.0.5",
        "API.example.com",
    ];
    let leaf = certificate(
        1,
        &sans,
        "CN=api.example.com",
        t.clock.now() + Duration::days(90),
    );
    let result = probe_ok(vec![leaf], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(plain.id, result)])
        .await
        .expect("record");

    let named = lease_all(&t).await;
    let names: BTreeSet<Option<String>> = named.iter().map(|e| e.sni.clone()).collect();
    let expected = [
        Some("api.example.com".to_owned()),
        Some("host-m1".to_owned()),
    ];
    assert_eq!(names, expected.into_iter().collect(), "{named:?}");
    assert!(named
        .iter()
        .all(|e| e.port == 443 && e.address == plain.address));

    // Probing a named endpoint that shows its own name again adds nothing.
    let api = named
        .iter()
        .find(|e| e.sni.as_deref() == Some("api.example.com"));
    let api = api.expect("leased above");
    let leaf = certificate(
        2,
        &["api.example.com"],
        "CN=x",
        t.clock.now() + Duration::days(9),
    );
    let mut result = probe_ok(vec![leaf], no_mtls(), t.clock.now());
    result.sni = Some("api.example.com".into());
    t.store
        .record_probe_results(&[(api.id, result)])
        .await
        .expect("record");
    assert!(lease_all(&t).await.is_empty(), "no new name, nothing due");
}

async fn named_endpoints_are_bounded_per_address_and_port(t: TestStore) {
    let report = report("m2", &[], vec![socket("10.0.0.6", 8443)], t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingest");
    let plain = lease_all(&t).await.pop().expect("the endpoint is due");
    let sans: Vec<String> = (0..30).map(|n| format!("n{n}.example.com")).collect();
    let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    let leaf = certificate(3, &sans, "CN=many", t.clock.now() + Duration::days(90));
    let result = probe_ok(vec![leaf], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(plain.id, result)])
        .await
        .expect("record");
    let named = lease_all(&t).await;
    assert!(
        !named.is_empty() && named.len() <= 8,
        "{} named endpoints",
        named.len()
    );
    assert!(named.iter().all(|e| e.sni.is_some()));
}

async fn learnt_names_are_presented_too_but_never_an_address(t: TestStore) {
    let report = report("m3", &[], vec![socket("10.0.0.7", 636)], t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingest");
    let plain = lease_all(&t).await.pop().expect("the endpoint is due");
    // A failed probe reveals no certificate name; the PTR name learnt for the address and
    // the host's name still become endpoints, an address given as a name does not.
    let result = probe_failed(ProbeStatus::Timeout, t.clock.now());
    let learnt = [
        (plain.id, "ldap-7.example.net.".to_owned()),
        (plain.id, "10.0.0.7".to_owned()),
    ];
    t.store
        .record_probe_results_with_names(&[(plain.id, result)], &learnt)
        .await
        .expect("record");
    let names: BTreeSet<Option<String>> = lease_all(&t).await.into_iter().map(|e| e.sni).collect();
    let expected = [
        Some("host-m3".to_owned()),
        Some("ldap-7.example.net".to_owned()),
    ];
    assert_eq!(names, expected.into_iter().collect());
}

async fn named_endpoints_live_as_long_as_the_endpoint_that_names_them(t: TestStore) {
    let reported = |at| report("m4", &[], vec![socket("10.0.0.8", 443)], at);
    t.store
        .ingest_report(&agent(), &reported(t.clock.now()))
        .await
        .expect("ingest");
    let plain = lease_all(&t).await.pop().expect("the endpoint is due");
    record_refused(&t, plain.id).await;
    // Five days on, the host reports the socket again and its endpoint is probed again:
    // the named endpoint's last_seen is carried forward, so that three days later a
    // retirement after seven days keeps it, as it keeps the endpoint naming it.
    t.clock.advance(Duration::days(5));
    t.store
        .ingest_report(&agent(), &reported(t.clock.now()))
        .await
        .expect("ingest again");
    record_refused(&t, plain.id).await;
    t.clock.advance(Duration::days(3));
    let retired = t
        .store
        .retire_endpoints(Duration::days(7))
        .await
        .expect("retire");
    assert_eq!(
        retired, 0,
        "the named endpoint lives on with the endpoint naming it"
    );
    // Without reports for eight more days, both retire.
    t.clock.advance(Duration::days(8));
    let retired = t
        .store
        .retire_endpoints(Duration::days(7))
        .await
        .expect("retire");
    assert_eq!(retired, 2);
}

async fn record_refused(t: &TestStore, id: EndpointId) {
    let result = probe_failed(ProbeStatus::Refused, t.clock.now());
    t.store
        .record_probe_results(&[(id, result)])
        .await
        .expect("record");
}
