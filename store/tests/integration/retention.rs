//! Retention (issue 19): old certificates, history, retired endpoints and silent hosts are
//! pruned in bounded batches; what an active endpoint serves, what a pending notification
//! is about, tokens, mutes and rotations stay. Time moves on the manual clock.

use certfleet_model::{CertificateInfo, ProbeResult};
use certfleet_store::{
    EndpointId, NotificationClaim, PruneCounts, RetentionPolicy, DEFAULT_PRUNE_BATCH,
};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    nothing_is_pruned_without_a_policy,
    a_certificate_nobody_serves_goes_and_what_is_served_or_pending_stays,
    history_older_than_the_window_is_compacted_to_the_changes,
    retired_endpoints_and_silent_hosts_go_tokens_stay,
    batches_are_bounded_and_prune_runs_until_done,
);

fn days(n: i64) -> Option<Duration> {
    Some(Duration::days(n))
}

async fn certificate_exists(t: &TestStore, seed: u64) -> bool {
    let sql = format!("SELECT COUNT(*) FROM certificates WHERE sha256 = '{seed:064x}'");
    t.count(&sql).await == 1
}

/// Reports `machine`'s sockets now and returns the ids of their endpoints (no SNI).
async fn reported(t: &TestStore, machine: &str, address: &str, ports: &[u16]) -> Vec<EndpointId> {
    let sockets = ports.iter().map(|port| socket(address, *port)).collect();
    let report = report(machine, &[("app", "web")], sockets, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let endpoints = all_endpoints(&*t.store).await;
    ports
        .iter()
        .map(|port| {
            endpoints
                .iter()
                .find(|e| e.address == address && e.port == *port && e.sni.is_none())
                .expect("reported endpoint")
                .id
        })
        .collect()
}

/// Probes one endpoint now (due or not) and records `result`.
async fn probe(t: &TestStore, id: EndpointId, result: ProbeResult) {
    let leased = t
        .store
        .lease_endpoints("retention-test", &[id], Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1, "endpoint {id:?} leased");
    t.store
        .record_probe_results(&[(id, result)])
        .await
        .expect("record");
}

fn leaf(t: &TestStore, seed: u64) -> CertificateInfo {
    // No DNS names: the probes name no other endpoints.
    certificate(
        seed,
        &[],
        "CN=retention",
        t.clock.now() + Duration::days(700),
    )
}

fn intermediate(t: &TestStore) -> CertificateInfo {
    CertificateInfo {
        is_ca: true,
        ..certificate(
            900,
            &[],
            "CN=Test Issuing CA",
            t.clock.now() + Duration::days(2000),
        )
    }
}

fn serving(t: &TestStore, seeds: &[u64]) -> ProbeResult {
    let mut chain: Vec<CertificateInfo> = seeds.iter().map(|seed| leaf(t, *seed)).collect();
    chain.push(intermediate(t));
    probe_ok(chain, no_mtls(), t.clock.now())
}

async fn nothing_is_pruned_without_a_policy(t: TestStore) {
    let [a] = reported(&t, "m1", "10.0.0.5", &[443]).await[..] else {
        panic!("one endpoint")
    };
    probe(&t, a, serving(&t, &[1])).await;
    t.clock.advance(Duration::days(4000));
    let pruned = t
        .store
        .prune(&RetentionPolicy::default())
        .await
        .expect("prune");
    assert_eq!(pruned, PruneCounts::default());
    assert!(certificate_exists(&t, 1).await);
    assert_eq!(
        t.store.pruned_totals().await.expect("totals"),
        PruneCounts::default()
    );
}

async fn a_certificate_nobody_serves_goes_and_what_is_served_or_pending_stays(t: TestStore) {
    let [a, b] = reported(&t, "m1", "10.0.0.5", &[443, 8443]).await[..] else {
        panic!("two endpoints")
    };
    // A serves leaf 1, then rotates to leaf 2; B serves leaf 3, then leaf 4. All under the
    // same intermediate.
    probe(&t, a, serving(&t, &[1])).await;
    probe(&t, b, serving(&t, &[3])).await;
    let muted_until = t.clock.now() + Duration::days(1000);
    t.store
        .mute_certificate(&format!("{:064x}", 1), "decommissioned", muted_until)
        .await
        .expect("mute");
    t.clock.advance(Duration::days(1));
    probe(&t, a, serving(&t, &[2])).await;
    probe(&t, b, serving(&t, &[4])).await;
    // Leaf 3 has a pending notification.
    let claim = NotificationClaim {
        sha256: format!("{:064x}", 3),
        owner: "owner@example.com".into(),
        threshold: "30d".into(),
    };
    t.store
        .claim_notifications(std::slice::from_ref(&claim))
        .await
        .expect("claim");
    let rotations = t.count("SELECT COUNT(*) FROM rotations").await;
    assert!(rotations >= 1, "A rotated");

    // 91 days on, A still serves leaf 2 (and the intermediate); B, unprobed since, still
    // serves leaf 4 (what an endpoint serves stays, however old).
    t.clock.advance(Duration::days(91));
    reported(&t, "m1", "10.0.0.5", &[443, 8443]).await;
    probe(&t, a, serving(&t, &[2])).await;
    let policy = RetentionPolicy {
        certificates: days(90),
        ..RetentionPolicy::default()
    };
    let pruned = t.store.prune(&policy).await.expect("prune");
    assert_eq!(pruned.certificates, 1, "{pruned:?}");
    assert_eq!(
        pruned.observations, 1,
        "A's observation of leaf 1: {pruned:?}"
    );
    assert!(
        !certificate_exists(&t, 1).await,
        "served by nobody for 91 days"
    );
    assert!(certificate_exists(&t, 2).await, "served now");
    assert!(certificate_exists(&t, 900).await, "in a chain served now");
    assert!(
        certificate_exists(&t, 4).await,
        "served now, though not seen for 91 days"
    );
    assert!(
        certificate_exists(&t, 3).await,
        "a pending notification is about it"
    );
    let leaf_1 = format!("{:064x}", 1);
    let links = format!("SELECT COUNT(*) FROM observation_chain WHERE sha256 = '{leaf_1}'");
    assert_eq!(t.count(&links).await, 0);
    let names = format!("SELECT COUNT(*) FROM certificate_names WHERE sha256 = '{leaf_1}'");
    assert_eq!(t.count(&names).await, 0);
    assert_eq!(t.count("SELECT COUNT(*) FROM rotations").await, rotations);
    let mutes = t.store.muted_certificates().await.expect("mutes");
    assert!(
        mutes.iter().any(|m| m.sha256 == leaf_1),
        "the user's mute stays"
    );
    let detail = t.store.endpoint(a).await.expect("A");
    assert_eq!(
        detail
            .endpoint
            .observation
            .as_ref()
            .and_then(|o| o.leaf_sha256.clone()),
        Some(format!("{:064x}", 2))
    );

    // Once the notification is sent, leaf 3 goes too, with it.
    let open = t.store.open_notifications().await.expect("open");
    let ids: Vec<i64> = open.iter().map(|n| n.id).collect();
    t.store.notifications_sent(&ids).await.expect("sent");
    let pruned = t.store.prune(&policy).await.expect("prune");
    assert_eq!(pruned.certificates, 1, "{pruned:?}");
    assert!(!certificate_exists(&t, 3).await);
    assert_eq!(t.count("SELECT COUNT(*) FROM notifications").await, 0);
    let again = t.store.prune(&policy).await.expect("prune");
    assert_eq!(again, PruneCounts::default(), "nothing left to prune");
    let totals = t.store.pruned_totals().await.expect("totals");
    assert_eq!(totals.certificates, 2);
    assert_eq!(totals.observations, 2);
}

async fn history_older_than_the_window_is_compacted_to_the_changes(t: TestStore) {
    let [a] = reported(&t, "m1", "10.0.0.5", &[443]).await[..] else {
        panic!("one endpoint")
    };
    let start = t.clock.now();
    // Day 0: leaf 1; day 1: leaf 1 asking for a client certificate; day 2: leaf 2; day 3:
    // leaf 2 asking; day 400: leaf 3, current.
    probe(&t, a, serving(&t, &[1])).await;
    t.clock.advance(Duration::days(1));
    probe(
        &t,
        a,
        probe_ok(vec![leaf(&t, 1)], mtls(false), t.clock.now()),
    )
    .await;
    t.clock.advance(Duration::days(1));
    probe(&t, a, serving(&t, &[2])).await;
    t.clock.advance(Duration::days(1));
    probe(
        &t,
        a,
        probe_ok(vec![leaf(&t, 2)], mtls(true), t.clock.now()),
    )
    .await;
    t.clock.advance(Duration::days(397));
    probe(&t, a, serving(&t, &[3])).await;
    assert_eq!(t.count("SELECT COUNT(*) FROM observations").await, 5);
    // The change to leaf 2 (day 2) is history; the change to leaf 3 (day 400) is recent.
    let rotations = t.count("SELECT COUNT(*) FROM rotations").await;
    assert_eq!(rotations, 2, "1 to 2, 2 to 3");

    let policy = RetentionPolicy {
        observations: days(365),
        ..RetentionPolicy::default()
    };
    let pruned = t.store.prune(&policy).await.expect("prune");
    assert_eq!(
        pruned.observations, 3,
        "two observations and the old rotation: {pruned:?}"
    );
    let recent = format!(
        "SELECT COUNT(*) FROM rotations WHERE new_sha256 = '{:064x}'",
        3
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM rotations").await, 1);
    assert_eq!(t.count(&recent).await, 1, "the recent rotation stays");
    let history = t.store.endpoint(a).await.expect("A").history;
    let kept: Vec<(Option<String>, time::OffsetDateTime)> = history
        .iter()
        .map(|o| (o.leaf_sha256.clone(), o.seen.first_seen))
        .collect();
    let sha = |seed: u64| Some(format!("{seed:064x}"));
    assert_eq!(
        kept,
        vec![
            (sha(3), start + Duration::days(400)),
            (sha(2), start + Duration::days(2)),
            (sha(1), start),
        ],
        "one observation per leaf, reaching back to its first sighting"
    );
    // The kept ones still have their chains; the current one is untouched.
    let orphans = "SELECT COUNT(*) FROM observation_chain oc WHERE NOT EXISTS \
                   (SELECT 1 FROM observations o WHERE o.id = oc.observation_id)";
    assert_eq!(t.count(orphans).await, 0);
    let again = t.store.prune(&policy).await.expect("prune");
    assert_eq!(again, PruneCounts::default());
    assert!(certificate_exists(&t, 1).await, "no certificate policy");
}

async fn retired_endpoints_and_silent_hosts_go_tokens_stay(t: TestStore) {
    let token = t.store.create_agent_token(&agent()).await.expect("token");
    assert!(!token.is_empty());
    let [gone] = reported(&t, "m-gone", "10.0.0.5", &[443]).await[..] else {
        panic!("one endpoint")
    };
    let [stays] = reported(&t, "m-stays", "10.0.0.6", &[443]).await[..] else {
        panic!("one endpoint")
    };
    probe(&t, gone, serving(&t, &[1])).await;
    probe(&t, stays, serving(&t, &[2])).await;
    let update = certfleet_model::OsqueryUpdate::default();
    for node in ["hostname:osq-gone", "hostname:osq-stays"] {
        t.store
            .update_osquery_host(node, &update)
            .await
            .expect("osquery");
    }

    // m-gone stops reporting: its endpoint retires after 7 days, then 30 more pass.
    t.clock.advance(Duration::days(8));
    reported(&t, "m-stays", "10.0.0.6", &[443]).await;
    // Its socket, and the endpoint named after its host.
    let retired = t
        .store
        .retire_endpoints(Duration::days(7))
        .await
        .expect("retire");
    assert!(retired >= 1);
    let policy = RetentionPolicy {
        hosts: days(30),
        ..RetentionPolicy::default()
    };
    assert_eq!(
        t.store.prune(&policy).await.expect("prune"),
        PruneCounts::default()
    );
    t.clock.advance(Duration::days(31));
    reported(&t, "m-stays", "10.0.0.6", &[443]).await;
    let update = certfleet_model::OsqueryUpdate::default();
    let node = "hostname:osq-stays";
    t.store
        .update_osquery_host(node, &update)
        .await
        .expect("osquery");
    let pruned = t.store.prune(&policy).await.expect("prune");
    assert_eq!(
        pruned,
        PruneCounts {
            certificates: 0,
            observations: 1,
            endpoints: retired,
            hosts: 2,
        },
        "m-gone and the silent osquery node"
    );
    let nodes = t.count("SELECT COUNT(*) FROM osquery_hosts").await;
    assert_eq!(nodes, 1, "the osquery node that posted stays");
    assert!(t
        .store
        .endpoint(gone)
        .await
        .is_err_and(|e| e.is_not_found()));
    let kept = t
        .store
        .endpoint(stays)
        .await
        .expect("active endpoint stays");
    assert!(kept.endpoint.observation.is_some());
    let hosts = t
        .count("SELECT COUNT(*) FROM hosts WHERE machine_id = 'm-stays'")
        .await;
    assert_eq!(hosts, 1);
    assert_eq!(t.count("SELECT COUNT(*) FROM hosts").await, 1);
    assert_eq!(
        t.store.tokens().await.expect("tokens").len(),
        1,
        "tokens stay"
    );
    assert!(certificate_exists(&t, 1).await, "no certificate policy");
    // A host pruned comes back as new when it reports again.
    reported(&t, "m-gone", "10.0.0.5", &[443]).await;
    assert_eq!(t.count("SELECT COUNT(*) FROM hosts").await, 2);
}

async fn batches_are_bounded_and_prune_runs_until_done(t: TestStore) {
    let ports: Vec<u16> = (1..=25).collect();
    let ids = reported(&t, "m1", "10.0.0.5", &ports).await;
    for (seed, id) in (100..).zip(&ids) {
        probe(&t, *id, serving(&t, &[seed])).await;
    }
    t.clock.advance(Duration::days(100));
    reported(&t, "m1", "10.0.0.5", &ports).await;
    for id in &ids {
        probe(&t, *id, serving(&t, &[50])).await;
    }
    let policy = RetentionPolicy {
        certificates: days(90),
        batch: 10,
        ..RetentionPolicy::default()
    };
    let first = t.store.prune_batch(&policy).await.expect("batch");
    // 25 leaves no endpoint serves any more.
    assert_eq!(first.certificates, 10, "{first:?}");
    assert!(!first.drained(policy.batch));
    let rest = t.store.prune(&policy).await.expect("prune");
    assert_eq!(rest.certificates, 15, "{rest:?}");
    let totals = t.store.pruned_totals().await.expect("totals");
    assert_eq!(totals.certificates, 25);
    assert_eq!(totals.observations, 25);
    // The leaf they all serve now, and its intermediate.
    assert_eq!(t.count("SELECT COUNT(*) FROM certificates").await, 2);
    assert_eq!(DEFAULT_PRUNE_BATCH, RetentionPolicy::default().batch);
}
