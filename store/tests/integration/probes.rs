//! Recording probe results: certificates, observations, schedule.

use certfleet_model::{MtlsEnforcement, ProbeStatus};
use certfleet_store::{EndpointId, LeasedEndpoint};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    recorded_probe_stores_the_chain_and_ends_the_lease,
    identical_probes_add_no_observation_but_move_last_seen,
    failed_probes_back_off_and_keep_the_last_certificate,
    missing_pem_is_accepted_and_filled_in_later,
    results_for_unknown_endpoints_are_ignored,
    mtls_enforced_by_http_is_kept,
);

/// Ingests one endpoint and leases it.
async fn one_leased_endpoint(t: &TestStore) -> LeasedEndpoint {
    let report = report(
        "m1",
        &[("app", "billing")],
        vec![socket("10.0.0.5", 443)],
        t.clock.now(),
    );
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let mut leased = t
        .store
        .lease_due_endpoints("w", 1, Duration::minutes(5))
        .await
        .expect("lease");
    leased.pop().expect("one endpoint due")
}

async fn recorded_probe_stores_the_chain_and_ends_the_lease(t: TestStore) {
    let lease = one_leased_endpoint(&t).await;
    let expiry = t.clock.now() + Duration::days(90);
    let mut leaf = certificate(1, &["api.example.com"], "CN=api.example.com", expiry);
    leaf.pem = Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into());
    let intermediate = certificate(
        2,
        &[],
        "CN=Test Issuing CA,O=Example",
        expiry + Duration::days(900),
    );
    let result = probe_ok(
        vec![leaf.clone(), intermediate.clone()],
        mtls(true),
        t.clock.now(),
    );

    let updated = t
        .store
        .record_probe_results(&[(lease.id, result)])
        .await
        .expect("records");

    assert_eq!(updated, 1);
    let detail = t
        .store
        .certificate(&leaf.sha256)
        .await
        .expect("leaf stored");
    assert_eq!(detail.pem, leaf.pem);
    assert_eq!(
        detail.chain,
        vec![leaf.sha256.clone(), intermediate.sha256.clone()]
    );
    assert_eq!(detail.certificate.serial, leaf.serial);
    assert_eq!(detail.certificate.not_after, expiry);
    assert_eq!(detail.served_at.len(), 1);
    assert!(detail.served_at[0].current);
    assert_eq!(detail.served_at[0].tags.app.as_deref(), Some("billing"));
    let endpoint = &all_endpoints(&*t.store).await[0];
    let observation = endpoint.observation.as_ref().expect("current observation");
    assert_eq!(
        observation.leaf_sha256.as_deref(),
        Some(leaf.sha256.as_str())
    );
    assert_eq!(observation.mtls, mtls(true));
    assert_eq!(endpoint.last_status, Some(ProbeStatus::Ok));
    let wait = endpoint.next_probe_at - t.clock.now();
    assert!(
        wait >= Duration::hours(21) && wait <= Duration::hours(27),
        "{wait}"
    );
    let again = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    // Due now: only the names the probe revealed (the host's, the leaf's), each an endpoint
    // of its own; the probed endpoint waits for its next probe time.
    assert!(
        again
            .iter()
            .all(|due| due.sni.is_some() && due.id != endpoint.id),
        "probed endpoints wait for their next probe time: {again:?}"
    );
}

async fn identical_probes_add_no_observation_but_move_last_seen(t: TestStore) {
    let lease = one_leased_endpoint(&t).await;
    let first_at = t.clock.now();
    let leaf = certificate(1, &["a.test"], "CN=a.test", first_at + Duration::days(90));
    let result = probe_ok(vec![leaf.clone()], no_mtls(), first_at);
    t.store
        .record_probe_results(&[(lease.id, result.clone())])
        .await
        .expect("first");
    let before = t.store.inventory().await.expect("inventory");

    t.clock.advance(Duration::days(1));
    let later = probe_ok(vec![leaf.clone()], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, later)])
        .await
        .expect("identical");

    assert_eq!(t.store.inventory().await.expect("inventory"), before);
    assert_eq!(before.observations, 1);
    let observation = all_endpoints(&*t.store).await[0]
        .observation
        .clone()
        .expect("observation");
    assert_eq!(observation.seen.first_seen, first_at);
    assert_eq!(observation.seen.last_seen, t.clock.now());

    let changed = probe_ok(vec![leaf], mtls(false), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, changed)])
        .await
        .expect("changed");
    assert_eq!(
        t.store.inventory().await.expect("inventory").observations,
        2
    );
    let current = all_endpoints(&*t.store).await[0]
        .observation
        .clone()
        .expect("observation");
    assert_eq!(current.mtls, mtls(false));
}

async fn failed_probes_back_off_and_keep_the_last_certificate(t: TestStore) {
    let lease = one_leased_endpoint(&t).await;
    let leaf = certificate(
        1,
        &["a.test"],
        "CN=a.test",
        t.clock.now() + Duration::days(90),
    );
    let ok = probe_ok(vec![leaf.clone()], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, ok)])
        .await
        .expect("ok");

    let mut waits = Vec::new();
    for _ in 0..3 {
        let failed = probe_failed(ProbeStatus::Timeout, t.clock.now());
        t.store
            .record_probe_results(&[(lease.id, failed)])
            .await
            .expect("failure");
        let endpoint = all_endpoints(&*t.store).await.remove(0);
        waits.push(endpoint.next_probe_at - t.clock.now());
        assert_eq!(endpoint.last_status, Some(ProbeStatus::Timeout));
        assert_eq!(endpoint.last_error.as_deref(), Some("timeout after 5s"));
        let observation = endpoint
            .observation
            .expect("the last certificate stays current");
        assert_eq!(
            observation.leaf_sha256.as_deref(),
            Some(leaf.sha256.as_str())
        );
    }
    let minutes: Vec<i64> = waits.iter().map(|wait| wait.whole_minutes()).collect();
    for (wait, expected) in minutes.iter().zip([10, 20, 40]) {
        let slack = expected / 10 + 1;
        assert!((wait - expected).abs() <= slack, "waits {minutes:?}");
    }
    assert_eq!(all_endpoints(&*t.store).await[0].failures, 3);
}

async fn missing_pem_is_accepted_and_filled_in_later(t: TestStore) {
    let lease = one_leased_endpoint(&t).await;
    let mut leaf = certificate(
        1,
        &["a.test"],
        "CN=a.test",
        t.clock.now() + Duration::days(90),
    );
    let without = probe_ok(vec![leaf.clone()], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, without)])
        .await
        .expect("without PEM");
    assert_eq!(
        t.store.certificate(&leaf.sha256).await.expect("stored").pem,
        None
    );

    leaf.pem = Some("PEM".into());
    let with = probe_ok(vec![leaf.clone()], no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, with)])
        .await
        .expect("with PEM");
    let stored = t.store.certificate(&leaf.sha256).await.expect("stored");
    assert_eq!(stored.pem.as_deref(), Some("PEM"));
}

async fn results_for_unknown_endpoints_are_ignored(t: TestStore) {
    let leaf = certificate(
        1,
        &["a.test"],
        "CN=a.test",
        t.clock.now() + Duration::days(90),
    );
    let result = probe_ok(vec![leaf], no_mtls(), t.clock.now());

    let updated = t
        .store
        .record_probe_results(&[(EndpointId(424242), result)])
        .await
        .expect("ok");

    assert_eq!(updated, 0);
    assert_eq!(
        t.store.inventory().await.expect("inventory").observations,
        0
    );
}

/// `mtls.enforced` (issue 14, item 3) survives the store: `http` for a server that finished
/// the handshake and refused the request, and the observation's history keeps it.
async fn mtls_enforced_by_http_is_kept(t: TestStore) {
    let lease = one_leased_endpoint(&t).await;
    let expiry = t.clock.now() + Duration::days(90);
    let leaf = certificate(1, &["api.example.com"], "CN=api.example.com", expiry);
    let mut policy = mtls(true);
    policy.enforced = Some(MtlsEnforcement::Http);
    let result = probe_ok(vec![leaf], policy.clone(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, result)])
        .await
        .expect("records");
    let endpoint = &all_endpoints(&*t.store).await[0];
    let observation = endpoint.observation.as_ref().expect("current observation");
    assert_eq!(observation.mtls, policy);
}
