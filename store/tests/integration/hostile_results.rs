//! Hostile probe results: control characters in every certificate string, and one bad
//! result in a batch of good ones. The prober escapes what it reads; these results come
//! as a hostile source would send them, to show that the store holds on its own.

use certfleet_model::{ProbeResult, ProbeStatus};
use certfleet_store::{EndpointId, LeasedEndpoint};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    control_characters_are_stored_escaped_never_fatal,
    one_bad_result_costs_no_other_result_of_its_batch,
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
        .certificates_by_hostname("ok.test", 10)
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
