//! Leasing due endpoints to prober workers.

use std::collections::HashSet;

use certfleet_store::EndpointId;
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    new_endpoints_are_leased_once_until_the_lease_ends,
    expired_lease_is_leased_again,
    concurrent_leasers_never_get_the_same_endpoint,
);

async fn new_endpoints_are_leased_once_until_the_lease_ends(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 5, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");

    let first = t
        .store
        .lease_due_endpoints("w1", 3, Duration::minutes(5))
        .await
        .expect("lease");
    let second = t
        .store
        .lease_due_endpoints("w2", 10, Duration::minutes(5))
        .await
        .expect("lease");
    let third = t
        .store
        .lease_due_endpoints("w3", 10, Duration::minutes(5))
        .await
        .expect("lease");

    assert_eq!((first.len(), second.len(), third.len()), (3, 2, 0));
    assert_eq!(first[0].lease_until, t.clock.now() + Duration::minutes(5));
    assert_eq!(first[0].target(), format!("10.0.0.5:{}", first[0].port));
    assert_eq!(first[0].sni, None);
}

async fn expired_lease_is_leased_again(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 2, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let crashed = t
        .store
        .lease_due_endpoints("crashed", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(crashed.len(), 2);

    t.clock.advance(Duration::minutes(4));
    let early = t
        .store
        .lease_due_endpoints("w2", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(early.is_empty(), "still leased");

    t.clock.advance(Duration::minutes(2));
    let again = t
        .store
        .lease_due_endpoints("w2", 10, Duration::minutes(5))
        .await
        .expect("lease");
    let ids = |leases: &[certfleet_store::LeasedEndpoint]| -> HashSet<EndpointId> {
        leases.iter().map(|lease| lease.id).collect()
    };
    assert_eq!(ids(&again), ids(&crashed));
}

async fn concurrent_leasers_never_get_the_same_endpoint(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.5", 2000, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");

    let mut workers = Vec::new();
    for worker in 0..4 {
        let store = t.store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let name = format!("worker-{worker}");
                let leased = store
                    .lease_due_endpoints(&name, 25, Duration::minutes(5))
                    .await
                    .expect("lease");
                if leased.is_empty() {
                    return mine;
                }
                mine.extend(leased.into_iter().map(|lease| lease.id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let ids = worker.await.expect("worker finishes");
        per_worker.push(ids.len());
        for id in ids {
            assert!(seen.insert(id), "endpoint {id:?} leased twice");
        }
    }
    assert_eq!(
        seen.len(),
        2000,
        "every endpoint leased once; per worker: {per_worker:?}"
    );
}
