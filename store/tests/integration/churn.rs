//! Sockets change hands and workloads die (issue 14): an address and port another host
//! takes over starts afresh, names follow their socket's owner, and a socket nobody
//! reports that fails twice no longer serves its certificate.

use certfleet_model::ProbeResult;
use certfleet_model::ProbeStatus;
use certfleet_store::EndpointRecord;
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    a_socket_taken_over_by_another_host_starts_afresh,
    names_follow_their_sockets_owner_at_once,
    a_socket_nobody_reports_that_fails_twice_no_longer_serves,
    a_socket_counts_once_however_many_names_it_is_probed_under,
);

fn owned_report(t: &TestStore, machine: &str, owner: &str) -> certfleet_model::AgentReport {
    report(
        machine,
        &[("owner", owner), ("app", "web")],
        vec![socket("10.0.0.5", 443)],
        t.clock.now(),
    )
}

/// Leases everything due and records `result` for each.
async fn probe_all(t: &TestStore, result: &ProbeResult) {
    let leased = t
        .store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease");
    let results: Vec<_> = leased.iter().map(|l| (l.id, result.clone())).collect();
    t.store
        .record_probe_results(&results)
        .await
        .expect("record");
}

fn ok_with_leaf(t: &TestStore) -> ProbeResult {
    let leaf = certificate(
        1,
        &["api.example.com"],
        "CN=api.example.com",
        t.clock.now() + Duration::days(10),
    );
    probe_ok(vec![leaf], no_mtls(), t.clock.now())
}

async fn by_sni(t: &TestStore) -> (EndpointRecord, Vec<EndpointRecord>) {
    by_sni_of(&*t.store).await
}

async fn a_socket_taken_over_by_another_host_starts_afresh(t: TestStore) {
    t.store
        .ingest_report(&agent(), &owned_report(&t, "host-a", "a@example.com"))
        .await
        .expect("ingests");
    probe_all(&t, &ok_with_leaf(&t)).await;
    probe_all(&t, &ok_with_leaf(&t)).await; // the names it revealed
    let (socket, names) = by_sni(&t).await;
    assert!(socket.observation.is_some());
    assert!(!names.is_empty() && names.iter().all(|n| n.observation.is_some()));

    // A stops reporting; past the claim window a new host B reports the same socket.
    t.clock.advance(Duration::hours(3));
    t.store
        .ingest_report(&agent(), &owned_report(&t, "host-b", "b@example.com"))
        .await
        .expect("ingests");
    let (socket, names) = by_sni(&t).await;
    assert_eq!(socket.tags.owner.as_deref(), Some("b@example.com"));
    assert!(socket.observation.is_none(), "A's certificate is not B's");
    assert!(socket.next_probe_at <= t.clock.now(), "due at once");
    for name in &names {
        assert_eq!(
            name.tags.owner.as_deref(),
            Some("b@example.com"),
            "{name:?}"
        );
        assert!(name.observation.is_none(), "{name:?}");
    }
    let expiring = t
        .store
        .expiring_leaves(Duration::days(30), None, 10)
        .await
        .expect("expiring");
    assert!(
        expiring.is_empty(),
        "no mail to B about A's certificate: {expiring:?}"
    );
    // Its history still shows what A's workload served.
    let detail = t.store.endpoint(socket.id).await.expect("detail");
    assert_eq!(detail.history.len(), 1);
}

async fn names_follow_their_sockets_owner_at_once(t: TestStore) {
    t.store
        .ingest_report(&agent(), &owned_report(&t, "m1", "old@example.com"))
        .await
        .expect("ingests");
    probe_all(&t, &ok_with_leaf(&t)).await;
    let (_, names) = by_sni(&t).await;
    assert!(!names.is_empty(), "the leaf's name is presented");
    t.clock.advance(Duration::minutes(30));
    t.store
        .ingest_report(&agent(), &owned_report(&t, "m1", "new@example.com"))
        .await
        .expect("ingests");
    let (socket, names) = by_sni(&t).await;
    assert_eq!(socket.tags.owner.as_deref(), Some("new@example.com"));
    for name in names {
        assert_eq!(
            name.tags.owner.as_deref(),
            Some("new@example.com"),
            "{name:?}"
        );
    }
}

async fn a_socket_nobody_reports_that_fails_twice_no_longer_serves(t: TestStore) {
    t.store
        .ingest_report(&agent(), &owned_report(&t, "m1", "a@example.com"))
        .await
        .expect("ingests");
    probe_all(&t, &ok_with_leaf(&t)).await;
    // The host stops reporting; the next probes fail.
    let socket_failures = |t: &TestStore| {
        let store = t.store.clone();
        async move {
            let (socket, _) = by_sni_of(&*store).await;
            (socket.failures, socket.observation.is_some())
        }
    };
    t.clock.advance(Duration::days(2));
    probe_all(&t, &probe_failed(ProbeStatus::Timeout, t.clock.now())).await;
    assert_eq!(
        socket_failures(&t).await,
        (1, true),
        "one failure keeps the certificate"
    );
    t.clock.advance(Duration::days(2));
    probe_all(&t, &probe_failed(ProbeStatus::Refused, t.clock.now())).await;
    assert_eq!(
        socket_failures(&t).await,
        (2, false),
        "two: no longer served"
    );
    let expiring = t
        .store
        .expiring_leaves(Duration::days(30), None, 10)
        .await
        .expect("expiring");
    assert!(expiring.is_empty(), "no 'still served' mail: {expiring:?}");

    // Reported again: due at once.
    t.store
        .ingest_report(&agent(), &owned_report(&t, "m1", "a@example.com"))
        .await
        .expect("ingests");
    let (socket, _) = by_sni(&t).await;
    assert!(
        socket.next_probe_at <= t.clock.now(),
        "probed at once when reported again"
    );
}

async fn by_sni_of(store: &dyn certfleet_store::Store) -> (EndpointRecord, Vec<EndpointRecord>) {
    let mut all = all_endpoints(store).await;
    let socket = all
        .iter()
        .position(|e| e.sni.is_none())
        .expect("the socket");
    let socket = all.remove(socket);
    (socket, all)
}

async fn a_socket_counts_once_however_many_names_it_is_probed_under(t: TestStore) {
    t.store
        .ingest_report(&agent(), &owned_report(&t, "m1", "a@example.com"))
        .await
        .expect("ingests");
    let required = ProbeResult {
        mtls: Some(mtls(true)),
        ..ok_with_leaf(&t)
    };
    probe_all(&t, &required).await;
    probe_all(&t, &required).await; // the names it revealed
    let (_, names) = by_sni(&t).await;
    // The certificate's name stays; the host name, a guess that selects the same
    // certificate, retires.
    let active = names.iter().filter(|n| n.retired_at.is_none()).count();
    assert!(active >= 1, "a socket and its names: {names:?}");
    let overview = t.store.fleet_overview().await.expect("overview");
    assert_eq!(overview.sockets, 1);
    assert_eq!(overview.active_endpoints, 1 + active as u64);
    assert_eq!(overview.mtls.required, 1, "{:?}", overview.mtls);
    assert_eq!(
        overview.endpoints_by_days_left.within_7_days
            + overview.endpoints_by_days_left.within_30_days
            + overview.endpoints_by_days_left.within_90_days
            + overview.endpoints_by_days_left.later
            + overview.endpoints_by_days_left.expired,
        1
    );
    let summary = t
        .store
        .mtls_summary(certfleet_store::MtlsGrouping::App)
        .await
        .expect("summary");
    let total: u64 = summary
        .groups
        .iter()
        .map(|g| g.counts.required + g.counts.optional + g.counts.none)
        .sum();
    assert_eq!(total, 1, "{summary:?}");

    // The socket list shows it once, its names nested in it, as the counts count it.
    let every = certfleet_store::EndpointSearch {
        limit: 10,
        ..Default::default()
    };
    let sockets = t.store.search_sockets(&every).await.expect("sockets");
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let socket = &sockets[0];
    assert_eq!(
        socket.endpoint.sni, None,
        "the socket probed without a name"
    );
    assert_eq!(socket.names.len(), active, "{socket:?}");
    assert_eq!(socket.names_total, active as u64);
    assert!(socket
        .names
        .iter()
        .all(|n| n.sni.is_some() && n.port == 443));
    let endpoints = t.store.search_endpoints(&every).await.expect("endpoints");
    assert_eq!(
        endpoints.len(),
        1 + active,
        "the flat list keeps every name"
    );
    for (mtls, expected) in [
        (certfleet_store::MtlsState::Required, 1),
        (certfleet_store::MtlsState::None, 0),
    ] {
        let search = certfleet_store::EndpointSearch {
            mtls: Some(mtls),
            ..every.clone()
        };
        let found = t.store.search_sockets(&search).await.expect("sockets");
        assert_eq!(found.len(), expected, "{mtls:?}: {found:?}");
    }
}
