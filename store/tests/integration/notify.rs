//! The notification outbox: candidates, claims, leases, delivery records, mutes.

use certfleet_store::{EndpointId, NotificationClaim, Resolution};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    candidates_are_served_leaves_and_intermediates_expiring_before_them,
    a_rotated_certificate_is_no_longer_a_candidate,
    each_claim_is_taken_once,
    a_leased_notification_is_not_leased_again_until_it_fails_and_its_retry_is_due,
    sent_and_resolved_notifications_are_never_leased,
    a_lease_is_renewed_only_by_its_holder_while_it_holds_it,
    mutes_are_in_force_until_they_end,
);

/// One endpoint of an `app=billing` host, probed once, serving `chain`.
async fn serving(t: &TestStore, chain: Vec<certfleet_model::CertificateInfo>) -> EndpointId {
    let report = report(
        "m1",
        &[("app", "billing"), ("owner", "team@example.com")],
        vec![socket("10.0.0.5", 443)],
        t.clock.now(),
    );
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let lease = t
        .store
        .lease_due_endpoints("w", 1, Duration::minutes(5))
        .await
        .expect("lease")
        .pop()
        .expect("one endpoint due");
    let result = probe_ok(chain, no_mtls(), t.clock.now());
    t.store
        .record_probe_results(&[(lease.id, result)])
        .await
        .expect("records");
    lease.id
}

fn claim(sha256: &str, owner: &str, threshold: &str) -> NotificationClaim {
    NotificationClaim {
        sha256: sha256.into(),
        owner: owner.into(),
        threshold: threshold.into(),
    }
}

async fn candidates_are_served_leaves_and_intermediates_expiring_before_them(t: TestStore) {
    let now = t.clock.now();
    let leaf = certificate(
        1,
        &["api.example.com"],
        "CN=api.example.com",
        now + Duration::days(20),
    );
    let mut early = certificate(2, &[], "CN=Issuing CA", now + Duration::days(10));
    let mut late = certificate(3, &[], "CN=Root CA", now + Duration::days(25));
    early.is_ca = true;
    late.is_ca = true;
    let endpoint = serving(&t, vec![leaf.clone(), early.clone(), late.clone()]).await;

    let mut found = t
        .store
        .notification_candidates(now + Duration::days(30))
        .await
        .expect("candidates");
    found.sort_by_key(|c| c.position);

    let hashes: Vec<&str> = found.iter().map(|c| c.sha256.as_str()).collect();
    assert_eq!(hashes, vec![leaf.sha256.as_str(), early.sha256.as_str()]);
    assert_eq!(found[0].endpoint_id, endpoint);
    assert_eq!(found[0].tags.app.as_deref(), Some("billing"));
    assert_eq!(found[0].tags.owner.as_deref(), Some("team@example.com"));
    assert_eq!(found[0].hostname.as_deref(), Some("host-m1"));
    assert_eq!(found[0].address, "10.0.0.5");
    assert_eq!(found[0].not_after, leaf.not_after);
    assert_eq!(found[1].position, 1);
    let sooner = t
        .store
        .notification_candidates(now + Duration::days(15))
        .await
        .expect("candidates");
    assert_eq!(
        sooner.len(),
        1,
        "only the intermediate expires within 15 days"
    );
}

async fn a_rotated_certificate_is_no_longer_a_candidate(t: TestStore) {
    let now = t.clock.now();
    let old = certificate(1, &["a.test"], "CN=a.test", now + Duration::days(5));
    let endpoint = serving(&t, vec![old.clone()]).await;
    let new = certificate(2, &["a.test"], "CN=a.test", now + Duration::days(95));
    let result = probe_ok(vec![new], no_mtls(), now);
    t.store
        .record_probe_results(&[(endpoint, result)])
        .await
        .expect("records");

    let found = t
        .store
        .notification_candidates(now + Duration::days(30))
        .await
        .expect("candidates");
    assert!(found.is_empty(), "{found:?}");
}

async fn each_claim_is_taken_once(t: TestStore) {
    let now = t.clock.now();
    let leaf = certificate(1, &["a.test"], "CN=a.test", now + Duration::days(5));
    serving(&t, vec![leaf.clone()]).await;
    let claims = vec![
        claim(&leaf.sha256, "a@example.com", "7d"),
        claim(&leaf.sha256, "b@example.com", "7d"),
    ];

    assert_eq!(
        t.store.claim_notifications(&claims).await.expect("claims"),
        2
    );
    assert_eq!(
        t.store.claim_notifications(&claims).await.expect("claims"),
        0
    );
    let next = [claim(&leaf.sha256, "a@example.com", "3d")];
    assert_eq!(t.store.claim_notifications(&next).await.expect("claims"), 1);
    let asked = [
        claim(&leaf.sha256, "a@example.com", "3d"),
        claim(&leaf.sha256, "c@x.org", "3d"),
    ];
    let existing = t
        .store
        .existing_claims(&asked)
        .await
        .expect("existing claims");
    assert_eq!(existing, vec![asked[0].clone()]);
    let open = t.store.open_notifications().await.expect("open");
    assert_eq!(open.len(), 3);
    assert!(open
        .iter()
        .all(|n| n.is_pending() && n.not_after == leaf.not_after));
}

async fn a_leased_notification_is_not_leased_again_until_it_fails_and_its_retry_is_due(
    t: TestStore,
) {
    let now = t.clock.now();
    let leaf = certificate(1, &["a.test"], "CN=a.test", now + Duration::days(5));
    serving(&t, vec![leaf.clone()]).await;
    let claims = [claim(&leaf.sha256, "a@example.com", "7d")];
    t.store.claim_notifications(&claims).await.expect("claims");

    let first = t
        .store
        .lease_notifications("one", 10, Duration::minutes(5))
        .await
        .expect("lease");
    let second = t
        .store
        .lease_notifications("two", 10, Duration::minutes(5))
        .await
        .expect("lease");

    assert_eq!(first.len(), 1);
    assert!(second.is_empty(), "a leased row is nobody else's");
    let ids = [first[0].id];
    let retry_at = now + Duration::minutes(2);
    let failed = t
        .store
        .notifications_failed(&ids, "connection refused", retry_at)
        .await;
    assert_eq!(failed.expect("failure recorded"), 1);
    let early = t
        .store
        .lease_notifications("two", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(early.is_empty(), "not before its retry time");
    let status = t.store.notification_status(10).await.expect("status");
    assert_eq!((status.pending, status.failing, status.sent), (1, 1, 0));
    assert_eq!(
        status.failures[0].last_error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(status.next_attempt_at, Some(retry_at));

    t.clock.advance(Duration::minutes(3));
    let retried = t
        .store
        .lease_notifications("two", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(t.store.notifications_sent(&ids).await.expect("sent"), 1);
    let status = t.store.notification_status(10).await.expect("status");
    assert_eq!((status.pending, status.failing, status.sent), (0, 0, 1));
}

async fn a_lease_is_renewed_only_by_its_holder_while_it_holds_it(t: TestStore) {
    let now = t.clock.now();
    let leaf = certificate(1, &["a.test"], "CN=a.test", now + Duration::days(5));
    serving(&t, vec![leaf.clone()]).await;
    let claims = [claim(&leaf.sha256, "a@example.com", "7d")];
    t.store.claim_notifications(&claims).await.expect("claims");
    let lease_for = Duration::minutes(5);
    let leased = t
        .store
        .lease_notifications("one.0", 10, lease_for)
        .await
        .expect("lease");
    let ids = [leaf_id(&leased)];

    // Renewed by its holder (nobody else's token renews it), it outlives its first term.
    let renew = |token: &'static str| {
        let store = t.store.clone();
        async move {
            store
                .renew_notification_lease(token, &ids, lease_for)
                .await
                .expect("renews")
        }
    };
    t.clock.advance(Duration::minutes(4));
    assert!(renew("two.0").await.is_empty(), "not held by two");
    assert_eq!(renew("one.0").await, ids);
    t.clock.advance(Duration::minutes(4));
    let taken = t.store.lease_notifications("two.0", 10, lease_for).await;
    assert!(taken.expect("lease").is_empty(), "renewed: still one's");

    // Run out and taken over: the old holder no longer renews it, the new one does.
    t.clock.advance(Duration::minutes(6));
    let taken = t.store.lease_notifications("two.0", 10, lease_for).await;
    assert_eq!(leaf_id(&taken.expect("lease")), ids[0]);
    assert!(renew("one.0").await.is_empty(), "taken over by two");
    assert_eq!(renew("two.0").await, ids);

    // Sent: held by nobody.
    t.store.notifications_sent(&ids).await.expect("sent");
    assert!(renew("two.0").await.is_empty(), "sent");
}

/// The id of the one notification leased.
fn leaf_id(leased: &[certfleet_store::NotificationRecord]) -> i64 {
    assert_eq!(leased.len(), 1, "{leased:?}");
    leased[0].id
}

async fn sent_and_resolved_notifications_are_never_leased(t: TestStore) {
    let now = t.clock.now();
    let leaf = certificate(1, &["a.test"], "CN=a.test", now + Duration::days(5));
    serving(&t, vec![leaf.clone()]).await;
    let claims = [
        claim(&leaf.sha256, "a@example.com", "7d"),
        claim(&leaf.sha256, "b@example.com", "7d"),
    ];
    t.store.claim_notifications(&claims).await.expect("claims");
    let open = t.store.open_notifications().await.expect("open");
    t.store
        .notifications_sent(&[open[0].id])
        .await
        .expect("sent");
    let resolved = t
        .store
        .resolve_notifications(&[open[1].id], Resolution::Muted)
        .await;
    assert_eq!(resolved.expect("resolves"), 1);

    let leased = t
        .store
        .lease_notifications("w", 10, Duration::minutes(5))
        .await
        .expect("lease");

    assert!(leased.is_empty(), "{leased:?}");
    let history = t
        .store
        .certificate_notifications(&leaf.sha256)
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    let muted = history
        .iter()
        .find(|n| n.owner == "b@example.com")
        .expect("b's row");
    assert_eq!(muted.resolution.as_deref(), Some("muted"));
    assert_eq!(t.store.open_notifications().await.expect("open").len(), 1);
}

async fn mutes_are_in_force_until_they_end(t: TestStore) {
    let now = t.clock.now();
    let sha256 = "AB".repeat(32);
    let mute = t
        .store
        .mute_certificate(&sha256, "decommissioned on Friday", now + Duration::days(3))
        .await
        .expect("mutes");
    assert_eq!(mute.sha256, "ab".repeat(32));
    assert_eq!(t.store.muted_certificates().await.expect("mutes").len(), 1);
    assert!(t
        .store
        .mute_certificate("not-a-hash", "x", now)
        .await
        .is_err());

    t.clock.advance(Duration::days(4));

    assert!(t
        .store
        .muted_certificates()
        .await
        .expect("mutes")
        .is_empty());
    assert!(t.store.unmute_certificate(&sha256).await.expect("unmutes"));
    assert!(!t.store.unmute_certificate(&sha256).await.expect("unmutes"));
}
