//! Change events: written in the transaction of each change, none for a quiet
//! re-sighting, read back in order, marked published, pruned; every kind matches
//! docs/events.schema.json.

use std::collections::BTreeMap;

use certfleet_model::Finding;
use certfleet_store::{EventKind, NotificationClaim, OutboxEvent};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    every_change_writes_one_event_and_quiet_resightings_none,
    published_events_leave_the_backlog_and_are_pruned_after_retention,
);

const SCHEMA: &str = include_str!("../../../docs/events.schema.json");

async fn pending(t: &TestStore) -> Vec<OutboxEvent> {
    t.store
        .pending_events(10_000)
        .await
        .expect("pending events")
}

/// The kinds of `events`, counted.
fn kinds(events: &[OutboxEvent]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(event.kind.clone()).or_default() += 1;
    }
    counts
}

fn counts(expected: &[(EventKind, usize)]) -> BTreeMap<String, usize> {
    expected
        .iter()
        .map(|(kind, count)| (kind.as_str().to_owned(), *count))
        .collect()
}

/// Publishes (marks) everything pending, returning it.
async fn take(t: &TestStore) -> Vec<OutboxEvent> {
    let events = pending(t).await;
    let seqs: Vec<i64> = events.iter().map(|event| event.seq).collect();
    t.store.events_published(&seqs).await.expect("marked");
    events
}

async fn every_change_writes_one_event_and_quiet_resightings_none(t: TestStore) {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("schema parses");
    let mut all = Vec::new();
    let sockets = vec![socket("10.0.0.5", 443), socket("10.0.0.5", 8443)];
    let first = report("m1", &[("app", "billing")], sockets.clone(), t.clock.now());
    t.store
        .ingest_report(&agent(), &first)
        .await
        .expect("ingests");
    let events = take(&t).await;
    assert_eq!(
        kinds(&events),
        counts(&[(EventKind::EndpointDiscovered, 2)])
    );
    let endpoint = &events[0].to_json()["endpoint"];
    assert_eq!(endpoint["address"], "10.0.0.5");
    assert_eq!(endpoint["app"], "billing");
    all.extend(events);

    // The same sockets again, later: a quiet re-sighting.
    t.clock.advance(Duration::hours(1));
    let again = report("m1", &[("app", "billing")], sockets, t.clock.now());
    t.store
        .ingest_report(&agent(), &again)
        .await
        .expect("ingests");
    assert_eq!(pending(&t).await, vec![], "a re-sighting is no change");

    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 2);
    let expiry = t.clock.now() + Duration::days(5);
    let old_leaf = certificate(1, &["a.test"], "CN=a.test", expiry);
    let mut self_signed = probe_ok(vec![old_leaf.clone()], no_mtls(), t.clock.now());
    self_signed.findings = vec![Finding::SelfSigned];
    let results: Vec<_> = leased
        .iter()
        .map(|lease| (lease.id, self_signed.clone()))
        .collect();
    t.store
        .record_probe_results(&results)
        .await
        .expect("records");
    let events = take(&t).await;
    assert_eq!(
        kinds(&events),
        counts(&[
            (EventKind::CertificateFirstSeen, 1),
            (EventKind::FindingRaised, 2),
            // The names to present under each socket: the host's name and the leaf's.
            (EventKind::EndpointDiscovered, 4),
        ])
    );
    all.extend(events);

    // The same probe again: nothing changed.
    t.clock.advance(Duration::hours(1));
    t.store
        .record_probe_results(&results)
        .await
        .expect("records");
    assert_eq!(
        pending(&t).await,
        vec![],
        "the same observation is no change"
    );

    // One endpoint rotates to a new leaf, no longer self-signed, now asking for a client
    // certificate.
    t.clock.advance(Duration::hours(1));
    let new_leaf = certificate(2, &["a.test"], "CN=a.test", expiry + Duration::days(90));
    let rotated = probe_ok(vec![new_leaf.clone()], mtls(true), t.clock.now());
    t.store
        .record_probe_results(&[(leased[0].id, rotated)])
        .await
        .expect("records");
    let events = take(&t).await;
    assert_eq!(
        kinds(&events),
        counts(&[
            (EventKind::CertificateFirstSeen, 1),
            (EventKind::CertificateRotated, 1),
            (EventKind::FindingCleared, 1),
            (EventKind::MtlsChanged, 1),
        ])
    );
    let rotation = events
        .iter()
        .find(|e| e.kind == "certificate.rotated")
        .expect("a rotation")
        .to_json();
    assert_eq!(rotation["previous"]["sha256"], old_leaf.sha256.as_str());
    assert_eq!(rotation["certificate"]["sha256"], new_leaf.sha256.as_str());
    assert_eq!(rotation["endpoint"]["id"], leased[0].id.0);
    all.extend(events);

    // A threshold crossed, a failed delivery, a sent one.
    let claim = NotificationClaim {
        sha256: new_leaf.sha256.clone(),
        owner: "team@example.com".into(),
        threshold: "7d".into(),
    };
    t.store
        .claim_notifications(std::slice::from_ref(&claim))
        .await
        .expect("claims");
    t.store.claim_notifications(&[claim]).await.expect("claims");
    let open = t.store.open_notifications().await.expect("open");
    let ids = [open[0].id];
    let retry = t.clock.now() + Duration::minutes(5);
    t.store
        .notifications_failed(&ids, "SMTP said no", retry)
        .await
        .expect("failed");
    t.store.notifications_sent(&ids).await.expect("sent");
    t.store.notifications_sent(&ids).await.expect("sent twice");
    let events = take(&t).await;
    assert_eq!(
        kinds(&events),
        counts(&[
            (EventKind::CertificateExpiring, 1),
            (EventKind::NotificationFailed, 1),
            (EventKind::NotificationSent, 1),
        ])
    );
    let failed = events
        .iter()
        .find(|e| e.kind == "notification.failed")
        .expect("a failure")
        .to_json();
    assert_eq!(failed["notification"]["error"], "SMTP said no");
    all.extend(events);

    // Nothing reports them for 8 days: they retire.
    t.clock.advance(Duration::days(8));
    let retired = t
        .store
        .retire_endpoints(Duration::days(7))
        .await
        .expect("retires");
    // The two sockets and the four names under them.
    assert_eq!(retired, 6);
    let events = take(&t).await;
    assert_eq!(kinds(&events), counts(&[(EventKind::EndpointRetired, 6)]));
    all.extend(events);

    let seen: std::collections::BTreeSet<&str> = all.iter().map(|e| e.kind.as_str()).collect();
    for kind in EventKind::ALL {
        assert!(seen.contains(kind.as_str()), "no {} event", kind.as_str());
    }
    let mut ids = std::collections::HashSet::new();
    for event in &all {
        let json = event.to_json();
        certfleet_testkit::json_schema::validate(&schema, &json)
            .unwrap_or_else(|error| panic!("{json} does not match the schema: {error}"));
        assert!(ids.insert(event.id.clone()), "event id {} twice", event.id);
    }
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in outbox order: {seqs:?}"
    );
}

async fn published_events_leave_the_backlog_and_are_pruned_after_retention(t: TestStore) {
    let report = many_sockets("m1", "10.0.0.9", 30, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    assert_eq!(t.store.event_backlog().await.expect("backlog"), 30);
    let first = t.store.pending_events(10).await.expect("pending");
    assert_eq!(first.len(), 10);
    let seqs: Vec<i64> = first.iter().map(|e| e.seq).collect();
    assert_eq!(t.store.events_published(&seqs).await.expect("marked"), 10);
    // Marking again (a retry after a lost answer) changes nothing.
    assert_eq!(t.store.events_published(&seqs).await.expect("marked"), 0);
    assert_eq!(t.store.event_backlog().await.expect("backlog"), 20);
    let next = t.store.pending_events(10).await.expect("pending");
    assert!(
        next[0].seq > first[9].seq,
        "the next batch follows the first"
    );

    let retention = Duration::days(7);
    assert_eq!(t.store.prune_events(retention).await.expect("prunes"), 0);
    t.clock.advance(Duration::days(8));
    assert_eq!(t.store.prune_events(retention).await.expect("prunes"), 10);
    // Pending events are never pruned, however old.
    assert_eq!(t.store.event_backlog().await.expect("backlog"), 20);
}
