//! Results recorded under a lease are written only while the lease holds; leases handed
//! back end and make their endpoints due when asked.

use certfleet_model::ProbeStatus;
use certfleet_store::{EndpointId, LeasedEndpoint, Recorded};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    a_stale_result_is_dropped_and_the_rest_of_its_batch_recorded,
    a_later_lease_by_the_same_worker_fences_the_earlier_one,
    handed_back_leases_end_and_are_due_when_asked,
);

async fn leased(t: &TestStore, worker: &str, count: u32) -> Vec<LeasedEndpoint> {
    t.store
        .lease_due_endpoints(worker, count, Duration::minutes(5))
        .await
        .expect("lease")
}

async fn a_stale_result_is_dropped_and_the_rest_of_its_batch_recorded(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 2, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let held_by_a = leased(&t, "a", 10).await;
    assert_eq!(held_by_a.len(), 2);
    let a_probed_at = t.clock.now();

    // A is paused past its lease; B leases one endpoint and records a newer result.
    t.clock.advance(Duration::minutes(6));
    let taken_by_b = leased(&t, "b", 1).await;
    assert_eq!(taken_by_b.len(), 1);
    let taken = taken_by_b[0].id;
    let kept = held_by_a.iter().find(|e| e.id != taken).expect("the other");
    let newer = certificate(
        2,
        &["new.test"],
        "CN=new.test",
        t.clock.now() + Duration::days(90),
    );
    let recorded = t
        .store
        .record_leased_probe_results(
            "b",
            &[(
                taken_by_b[0].lease(),
                probe_ok(vec![newer.clone()], no_mtls(), t.clock.now()),
            )],
            &[],
        )
        .await
        .expect("B records");
    assert_eq!(
        recorded,
        Recorded {
            recorded: 1,
            stale: vec![]
        }
    );

    // A wakes and records both of its results, made before B's.
    let older = certificate(
        1,
        &["old.test"],
        "CN=old.test",
        t.clock.now() + Duration::days(90),
    );
    let results: Vec<_> = held_by_a
        .iter()
        .map(|e| {
            (
                e.lease(),
                probe_ok(vec![older.clone()], no_mtls(), a_probed_at),
            )
        })
        .collect();
    let learnt = vec![(taken, "stale-name.test".to_owned())];
    let recorded = t
        .store
        .record_leased_probe_results("a", &results, &learnt)
        .await
        .expect("A records");
    assert_eq!(
        recorded,
        Recorded {
            recorded: 1,
            stale: vec![taken]
        }
    );

    let endpoints = all_endpoints(&*t.store).await;
    let find = |id: EndpointId| endpoints.iter().find(|e| e.id == id).expect("endpoint");
    let leaf_of = |id: EndpointId| {
        find(id)
            .observation
            .as_ref()
            .and_then(|o| o.leaf_sha256.clone())
    };
    assert_eq!(
        leaf_of(taken),
        Some(newer.sha256.clone()),
        "B's result stays"
    );
    assert_eq!(find(taken).last_probed_at, Some(t.clock.now()));
    // A's lease of the other endpoint expired, but nobody took it: its result is the newest.
    assert_eq!(leaf_of(kept.id), Some(older.sha256.clone()));
    assert_eq!(find(kept.id).last_status, Some(ProbeStatus::Ok));
    assert!(
        !endpoints
            .iter()
            .any(|e| e.sni.as_deref() == Some("stale-name.test")),
        "names learnt with a stale result are dropped too"
    );
    // Only the kept endpoint's observation of the old certificate exists.
    let observations = t.store.inventory().await.expect("inventory").observations;
    assert_eq!(observations, 2);
}

async fn a_later_lease_by_the_same_worker_fences_the_earlier_one(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 1, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let first = leased(&t, "a", 1).await.remove(0);
    t.clock.advance(Duration::minutes(6));
    let second = leased(&t, "a", 1).await.remove(0);
    assert_eq!(first.id, second.id);
    assert_ne!(first.lease(), second.lease());

    let old = probe_failed(ProbeStatus::Timeout, t.clock.now() - Duration::minutes(6));
    let recorded = t
        .store
        .record_leased_probe_results("a", &[(first.lease(), old)], &[])
        .await
        .expect("records");
    assert_eq!(recorded.stale, vec![first.id]);
    let fresh = probe_failed(ProbeStatus::Refused, t.clock.now());
    let recorded = t
        .store
        .record_leased_probe_results("a", &[(second.lease(), fresh)], &[])
        .await
        .expect("records");
    assert_eq!(
        recorded,
        Recorded {
            recorded: 1,
            stale: vec![]
        }
    );
    let endpoint = all_endpoints(&*t.store).await.remove(0);
    assert_eq!(endpoint.last_status, Some(ProbeStatus::Refused));
    assert_eq!(endpoint.failures, 1, "one failure counted, not two");
}

async fn handed_back_leases_end_and_are_due_when_asked(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 3, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let held = leased(&t, "a", 10).await;
    assert_eq!(held.len(), 3);
    let due = t.clock.now() + Duration::minutes(2);
    // Another worker's release, or one naming an old lease, changes nothing.
    let not_ours = [(held[0].lease(), t.clock.now())];
    assert_eq!(
        t.store
            .release_leases("b", &not_ours)
            .await
            .expect("release"),
        0
    );
    let mut old = held[1].lease();
    old.until -= Duration::seconds(30);
    assert_eq!(
        t.store
            .release_leases("a", &[(old, t.clock.now())])
            .await
            .expect("release"),
        0
    );

    let back: Vec<_> = held[..2].iter().map(|e| (e.lease(), due)).collect();
    assert_eq!(
        t.store.release_leases("a", &back).await.expect("release"),
        2
    );
    assert!(leased(&t, "b", 10).await.is_empty(), "due in two minutes");
    t.clock.advance(Duration::minutes(2));
    let again = leased(&t, "b", 10).await;
    let mut ids: Vec<_> = again.iter().map(|e| e.id).collect();
    ids.sort();
    let mut expected = vec![held[0].id, held[1].id];
    expected.sort();
    assert_eq!(ids, expected, "the third is still a's");
    let endpoints = all_endpoints(&*t.store).await;
    assert!(endpoints
        .iter()
        .all(|e| e.failures == 0 && e.last_status.is_none()));
}
