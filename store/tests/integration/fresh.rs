//! Probe intervals that follow the certificate, probes outside the schedule, and the
//! rotations probes see with their discovery latency (issue 18), with the manual clock.

use certfleet_model::{CertificateInfo, ProbeStatus};
use certfleet_store::{EndpointId, EndpointRecord, Store};
use time::{Duration, OffsetDateTime};

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    the_next_probe_follows_the_certificate,
    endpoints_leased_outside_the_schedule_stay_with_that_lease,
    a_new_leaf_is_a_rotation_timed_from_the_last_sight_of_the_old_one,
);

/// A leaf of `lifetime` with `left` to run at `now`.
fn leaf(seed: u64, now: OffsetDateTime, lifetime: Duration, left: Duration) -> CertificateInfo {
    CertificateInfo {
        not_before: now + left - lifetime,
        ..certificate(
            seed,
            &["fresh.example.com"],
            "CN=fresh.example.com",
            now + left,
        )
    }
}

/// The one endpoint of a one-socket report.
async fn one_endpoint(t: &TestStore) -> EndpointId {
    let report = many_sockets("m1", "10.0.0.5", 1, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    all_endpoints(&*t.store).await[0].id
}

async fn record(t: &TestStore, id: EndpointId, chain: Vec<CertificateInfo>) -> EndpointRecord {
    let result = if chain.is_empty() {
        probe_failed(ProbeStatus::Refused, t.clock.now())
    } else {
        probe_ok(chain, no_mtls(), t.clock.now())
    };
    t.store
        .record_probe_results(&[(id, result)])
        .await
        .expect("records");
    endpoint(&*t.store, id).await
}

async fn endpoint(store: &dyn Store, id: EndpointId) -> EndpointRecord {
    all_endpoints(store)
        .await
        .into_iter()
        .find(|e| e.id == id)
        .expect("the endpoint")
}

/// Whether `id` is due: leased by a scheduled lease now. (The names its certificate
/// reveals are endpoints of their own, due at once; they are not counted.)
async fn due(t: &TestStore, id: EndpointId) -> usize {
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    let due = leased.iter().filter(|e| e.id == id).count();
    // Hand the lease back (due when it was), so that the next check sees the same.
    let back: Vec<_> = leased
        .iter()
        .filter(|e| e.id == id)
        .map(|e| (e.lease(), t.clock.now()))
        .collect();
    t.store.release_leases("w", &back).await.expect("release");
    due
}

async fn the_next_probe_follows_the_certificate(t: TestStore) {
    let id = one_endpoint(&t).await;
    let now = t.clock.now();

    // 5 days left of a 90-day certificate: a tenth of that, 12 hours (±10 % jitter).
    let probed = record(
        &t,
        id,
        vec![leaf(1, now, Duration::days(90), Duration::days(5))],
    )
    .await;
    let wait = probed.next_probe_at - now;
    assert!(
        wait >= Duration::minutes(648) && wait <= Duration::minutes(792),
        "next probe in {wait}"
    );
    // Not due before then, due after.
    t.clock.advance(Duration::minutes(640));
    assert_eq!(due(&t, id).await, 0);
    t.clock.set(probed.next_probe_at);
    assert_eq!(due(&t, id).await, 1);

    // 7 days and 3 hours left of a year: the 7-day threshold comes first, and the probe
    // comes a minute or two after it.
    let now = t.clock.now();
    let near = leaf(
        2,
        now,
        Duration::days(365),
        Duration::days(7) + Duration::hours(3),
    );
    let probed = record(&t, id, vec![near]).await;
    let wait = probed.next_probe_at - now;
    assert!(
        wait >= Duration::minutes(181) && wait <= Duration::minutes(182),
        "next probe in {wait}"
    );

    // 200 days left: the 24-hour interval (±10 %).
    let now = t.clock.now();
    let far = leaf(3, now, Duration::days(365), Duration::days(200));
    let probed = record(&t, id, vec![far]).await;
    let wait = probed.next_probe_at - now;
    assert!(
        wait >= Duration::hours(21) && wait <= Duration::hours(27),
        "next probe in {wait}"
    );

    // A failure backs off from 10 minutes, whatever the certificate.
    let now = t.clock.now();
    let failed = record(&t, id, vec![]).await;
    let wait = failed.next_probe_at - now;
    assert!(
        wait >= Duration::minutes(9) && wait <= Duration::minutes(11),
        "next probe in {wait}"
    );
}

async fn endpoints_leased_outside_the_schedule_stay_with_that_lease(t: TestStore) {
    let id = one_endpoint(&t).await;
    let now = t.clock.now();
    record(
        &t,
        id,
        vec![leaf(1, now, Duration::days(90), Duration::days(5))],
    )
    .await;
    assert_eq!(due(&t, id).await, 0, "not due for hours");

    // Leased although not due; nobody else gets it while the lease holds.
    let leased = t
        .store
        .lease_endpoints(
            "confirm/1",
            &[id, EndpointId(999_999)],
            Duration::minutes(2),
        )
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1, "the unknown id is not leased");
    assert_eq!(leased[0].id, id);
    let other = t
        .store
        .lease_endpoints("confirm/2", &[id], Duration::minutes(2))
        .await
        .expect("lease");
    assert!(other.is_empty(), "leased twice: {other:?}");
    t.clock.advance(Duration::minutes(1));
    assert_eq!(due(&t, id).await, 0);

    // Its result is recorded under that lease, and the schedule resumes from it.
    let renewed = leaf(2, t.clock.now(), Duration::days(365), Duration::days(364));
    let result = probe_ok(vec![renewed], no_mtls(), t.clock.now());
    let recorded = t
        .store
        .record_leased_probe_results("confirm/1", &[(leased[0].lease(), result)], &[])
        .await
        .expect("records");
    assert_eq!((recorded.recorded, recorded.stale.len()), (1, 0));
    let after = endpoint(&*t.store, id).await;
    assert_eq!(
        after.observation.expect("observed").leaf_sha256,
        Some(format!("{:064x}", 2))
    );
    assert!(after.next_probe_at - t.clock.now() >= Duration::hours(21));

    // A lease that ran out is free to take again.
    let again = t
        .store
        .lease_endpoints("confirm/2", &[id], Duration::minutes(2))
        .await
        .expect("lease");
    assert_eq!(again.len(), 1);
}

async fn a_new_leaf_is_a_rotation_timed_from_the_last_sight_of_the_old_one(t: TestStore) {
    let id = one_endpoint(&t).await;
    let start = t.clock.now();
    let old = leaf(1, start, Duration::days(90), Duration::days(5));
    record(&t, id, vec![old.clone()]).await;
    // Seen again an hour later: the latency counts from this last sight.
    t.clock.advance(Duration::hours(1));
    record(&t, id, vec![old.clone()]).await;
    // A failed probe is no rotation, and leaves the old leaf current.
    t.clock.advance(Duration::minutes(30));
    record(&t, id, vec![]).await;
    t.clock.advance(Duration::minutes(90));
    let renewed = leaf(2, t.clock.now(), Duration::days(365), Duration::days(364));
    record(&t, id, vec![renewed.clone()]).await;
    // The same leaf again is no rotation either.
    t.clock.advance(Duration::hours(1));
    record(&t, id, vec![renewed]).await;

    let discovery = t.store.fleet_overview().await.expect("overview").discovery;
    assert_eq!(discovery.all.count, 1, "{discovery:?}");
    // Two hours from the last probe that saw the old leaf to the first that saw the new.
    assert_eq!(discovery.all.sum_seconds, 7200.0, "{discovery:?}");
    let within = |bound: u64| {
        discovery
            .all
            .within
            .iter()
            .find(|(b, _)| *b == bound)
            .map(|(_, count)| *count)
    };
    assert_eq!(within(3_600), Some(0));
    assert_eq!(within(3 * 3_600), Some(1));
    assert_eq!(discovery.last_7_days.count, 1);

    // A week on, it is history: counted in all, not in the last 7 days.
    t.clock.advance(Duration::days(8));
    let discovery = t.store.fleet_overview().await.expect("overview").discovery;
    assert_eq!((discovery.all.count, discovery.last_7_days.count), (1, 0));
}
