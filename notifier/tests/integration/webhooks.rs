//! Webhooks from the outbox, against a real HTTP receiver on 127.0.0.1: a signed digest
//! for the right owner only, retried after a 503 (honouring its Retry-After) and then
//! delivered once; a receiver that keeps failing shows as failing like mail; hostile
//! receivers (a tarpit, a redirect, an endless answer, a 404) cost one delivery each.

use certfleet_model::CertificateInfo;
use certfleet_notifier::{Delivery, Settings, Webhook, WebhookSpec};
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::{on_postgres, on_sqlite, settings, TestStore};
use crate::receiver::{Answer, Receiver, Tarpit};
use crate::smtpd::{free_port, url};

const SECRET: &str = "webhook-test-secret";

fn webhook(url: &str, owners: &[&str]) -> Webhook {
    Webhook::new(
        0,
        WebhookSpec {
            name: Some("team".into()),
            url: url.into(),
            format: "json".into(),
            owners: owners.iter().map(|o| (*o).to_owned()).collect(),
            secret: SECRET.into(),
            ..WebhookSpec::default()
        },
    )
    .expect("valid webhook")
}

/// Mail as `.eml` files in `dir`, and `webhook`.
fn with_webhook(delivery: Delivery, webhook: Webhook) -> Settings {
    Settings {
        webhooks: vec![webhook],
        webhook_timeout: std::time::Duration::from_secs(2),
        ..settings(delivery)
    }
}

/// A billing host (owner billing@example.com by rule) and an untagged host (the default
/// owner, ops@example.com), each serving a certificate with 5 days left.
async fn two_owners(t: &TestStore) -> (CertificateInfo, CertificateInfo) {
    let now = t.now();
    let billing = leaf(1, "pay.example.com", now, Duration::days(5));
    let ops = leaf(2, "ops.example.com", now, Duration::days(5));
    let tags = [("app", "billing")];
    let host = Host {
        hostname: "billing-1",
        address: "10.0.1.1",
        tags: &tags,
    };
    host.serves(&*t.store, now, vec![(443, vec![billing.clone()])])
        .await;
    let host = Host {
        hostname: "misc-1",
        address: "10.0.1.2",
        tags: &[],
    };
    host.serves(&*t.store, now, vec![(443, vec![ops.clone()])])
        .await;
    (billing, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_a_signed_digest_of_its_owner_once_after_a_503_on_sqlite() {
    on_sqlite(a_webhook_gets_a_signed_digest_of_its_owner_once_after_a_503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_a_signed_digest_of_its_owner_once_after_a_503_on_postgres() {
    on_postgres(a_webhook_gets_a_signed_digest_of_its_owner_once_after_a_503).await;
}

async fn a_webhook_gets_a_signed_digest_of_its_owner_once_after_a_503(t: TestStore) {
    let (billing, ops) = two_owners(&t).await;
    let unavailable = Answer::status(503).header("retry-after", "120");
    let receiver = Receiver::start(vec![unavailable], Answer::status(204)).await;
    let outbox = tempfile::tempdir().expect("temporary directory");
    let notifier = t.notifier(with_webhook(
        Delivery::Files(outbox.path().to_owned()),
        webhook(&receiver.url, &["billing@example.com"]),
    ));
    let started = t.now();

    let first = notifier.run_once().await.expect("run");

    assert_eq!(first.digests_sent, 2, "both owners' mail: {first:?}");
    assert_eq!(first.failures.len(), 1, "{first:?}");
    assert_eq!(first.failures[0].owner, "webhook:team");
    assert!(first.failures[0].error.contains("HTTP 503"), "{first:?}");
    let status = t.store.notification_status(10).await.expect("status");
    assert_eq!((status.pending, status.failing, status.sent), (1, 1, 2));
    assert_eq!(
        status.next_attempt_at,
        Some(started + Duration::minutes(2)),
        "the receiver's Retry-After (120 s) over the first back-off (1 min)"
    );

    t.clock.advance(Duration::minutes(1));
    notifier.run_once().await.expect("run");
    assert_eq!(receiver.received().len(), 1, "not before its Retry-After");

    t.clock.advance(Duration::minutes(1));
    let retried = notifier.run_once().await.expect("run");
    assert_eq!((retried.digests_sent, retried.notifications_sent), (1, 1));
    notifier.run_once().await.expect("run");
    let received = receiver.received();
    assert_eq!(
        received.len(),
        2,
        "one failed post and one delivery, nothing more"
    );
    let (failed, delivered) = (&received[0], &received[1]);
    assert!(delivered.signed_with(SECRET), "a valid signature");
    assert!(
        !delivered.signed_with("another secret"),
        "checked with the secret"
    );
    assert!(failed.signed_with(SECRET));
    assert_eq!(
        delivered.header("x-certfleet-delivery"),
        failed.header("x-certfleet-delivery"),
        "a retry is the same delivery"
    );
    assert_eq!(
        delivered.header("x-certfleet-timestamp"),
        (started + Duration::minutes(2))
            .unix_timestamp()
            .to_string()
    );
    assert_eq!(delivered.header("content-type"), "application/json");
    let document = delivered.json();
    assert_eq!(document["type"], "certfleet.digest");
    assert_eq!(document["recipient"], "webhook:team");
    assert_eq!(
        document["delivery"],
        delivered.header("x-certfleet-delivery")
    );
    assert_eq!(
        document["owners"],
        serde_json::json!(["billing@example.com"])
    );
    let items = document["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{document}");
    assert_eq!(items[0]["sha256"], billing.sha256.as_str());
    assert_eq!(
        items[0]["days_left"], 4,
        "5 days at the start, 2 minutes later"
    );
    assert_eq!(items[0]["level"], "7d");
    assert_eq!(items[0]["endpoints"][0]["address"], "10.0.1.1:443");
    assert!(!delivered
        .body
        .windows(64)
        .any(|w| w == ops.sha256.as_bytes()));
    let status = t.store.notification_status(10).await.expect("status");
    assert_eq!((status.pending, status.failing, status.sent), (0, 0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_shows_as_failing_like_mail_on_sqlite() {
    on_sqlite(a_receiver_that_keeps_failing_shows_as_failing_like_mail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_keeps_failing_shows_as_failing_like_mail_on_postgres() {
    on_postgres(a_receiver_that_keeps_failing_shows_as_failing_like_mail).await;
}

async fn a_receiver_that_keeps_failing_shows_as_failing_like_mail(t: TestStore) {
    two_owners(&t).await;
    let broken = Answer::status(500).body(b"internal\nerror".to_vec());
    let receiver = Receiver::start(Vec::new(), broken).await;
    // SMTP down too: its failures and the webhook's are listed alike.
    let smtp_down = Delivery::Smtp(url(free_port()));
    let notifier = t.notifier(with_webhook(smtp_down, webhook(&receiver.url, &[])));

    let first = notifier
        .run_once()
        .await
        .expect("a run with failures completes");
    t.clock.advance(Duration::minutes(1));
    let second = notifier.run_once().await.expect("run");

    assert_eq!(
        first.failures.len(),
        3,
        "two mails and the webhook: {first:?}"
    );
    assert_eq!(second.failures.len(), 3, "{second:?}");
    assert_eq!(receiver.received().len(), 2, "one post per run");
    let status = t.store.notification_status(10).await.expect("status");
    assert_eq!((status.pending, status.failing, status.sent), (4, 4, 0));
    let hooked: Vec<_> = status
        .failures
        .iter()
        .filter(|n| n.owner == "webhook:team")
        .collect();
    assert_eq!(
        hooked.len(),
        2,
        "both certificates, to a webhook serving every owner"
    );
    for failure in hooked {
        assert_eq!(failure.attempts, 2);
        let reason = failure.last_error.as_deref().unwrap_or_default();
        assert_eq!(reason, "webhook team: HTTP 500: internal error");
    }
    assert!(status
        .failures
        .iter()
        .any(|n| n.owner == "billing@example.com"
            && n.last_error.as_deref().is_some_and(|e| e.contains("SMTP"))));
    assert_eq!(
        status.next_attempt_at,
        Some(t.now() + Duration::minutes(2)),
        "backs off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_cost_one_delivery_each() {
    on_sqlite(|t: TestStore| async move {
        two_owners(&t).await;
        let outbox = tempfile::tempdir().expect("temporary directory");
        let files = || Delivery::Files(outbox.path().to_owned());

        // A tarpit: the post ends at its deadline, the run goes on.
        let tarpit = Tarpit::start().await;
        let notifier = t.notifier(with_webhook(files(), webhook(&tarpit.url, &[])));
        let report = notifier.run_once().await.expect("run");
        assert_eq!(report.digests_sent, 2, "the mail still goes: {report:?}");
        let reasons: Vec<&str> = report.failures.iter().map(|f| f.error.as_str()).collect();
        assert_eq!(reasons, vec!["webhook team: no answer within 2s"]);
        drop(tarpit);

        // A redirect is not followed, and is permanent: retried at the longest back-off.
        let elsewhere = Receiver::start(Vec::new(), Answer::status(200)).await;
        let moved = Answer::status(302).header("location", elsewhere.url.clone());
        let redirecting = Receiver::start(Vec::new(), moved).await;
        t.clock.advance(Duration::minutes(1));
        let notifier = t.notifier(with_webhook(files(), webhook(&redirecting.url, &[])));
        let report = notifier.run_once().await.expect("run");
        assert_eq!(report.failures.len(), 1, "{report:?}");
        assert!(report.failures[0].error.contains("HTTP 302"), "{report:?}");
        assert!(report.failures[0].error.contains("permanent"), "{report:?}");
        assert!(
            elsewhere.received().is_empty(),
            "the redirect was not followed"
        );
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!(status.next_attempt_at, Some(t.now() + Duration::hours(1)));

        // An endless (8 MiB) answer: read only its start, the reason stays short.
        let endless = Answer::status(502).body(vec![b'x'; 8 << 20]);
        let flooding = Receiver::start(Vec::new(), endless).await;
        t.clock.advance(Duration::hours(1));
        let notifier = t.notifier(with_webhook(files(), webhook(&flooding.url, &[])));
        let report = notifier.run_once().await.expect("run");
        assert_eq!(report.failures.len(), 1, "{report:?}");
        let reason = &report.failures[0].error;
        assert!(
            reason.starts_with("webhook team: HTTP 502: xxx"),
            "{reason}"
        );
        assert!(reason.len() < 300, "{}", reason.len());

        // A 2xx at last: delivered once.
        let fine = Receiver::start(Vec::new(), Answer::status(200)).await;
        t.clock.advance(Duration::hours(1));
        let notifier = t.notifier(with_webhook(files(), webhook(&fine.url, &[])));
        let report = notifier.run_once().await.expect("run");
        assert_eq!((report.digests_sent, report.notifications_sent), (1, 2));
        assert_eq!(fine.received().len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_digest_is_posted_in_parts_each_its_own_delivery() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let served: Vec<(u16, Vec<CertificateInfo>)> = (0..1_001_u16)
            .map(|n| {
                let name = format!("svc{n}.example.com");
                let left = Duration::days(5) + Duration::minutes(i64::from(n));
                (10_000 + n, vec![leaf(u64::from(n) + 1, &name, now, left)])
            })
            .collect();
        let host = Host {
            hostname: "big-1",
            address: "10.0.2.1",
            tags: &[],
        };
        host.serves(&*t.store, now, served).await;
        let receiver = Receiver::start(Vec::new(), Answer::status(200)).await;
        let outbox = tempfile::tempdir().expect("temporary directory");
        let notifier = t.notifier(with_webhook(
            Delivery::Files(outbox.path().to_owned()),
            webhook(&receiver.url, &[]),
        ));

        let report = notifier.run_once().await.expect("run");
        notifier.run_once().await.expect("run");

        assert!(report.failures.is_empty(), "{report:?}");
        let mut received = receiver.received();
        assert_eq!(received.len(), 2, "1,000 certificates, then 1");
        // Posted side by side: in either order.
        received.sort_by_key(|post| std::cmp::Reverse(post.body.len()));
        let sizes: Vec<usize> = received
            .iter()
            .map(|post| post.json()["items"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, vec![1_000, 1]);
        assert!(received.iter().all(|post| post.signed_with(SECRET)));
        assert_ne!(
            received[0].header("x-certfleet-delivery"),
            received[1].header("x-certfleet-delivery")
        );
        let last = &received[1].json()["items"][0];
        assert_eq!(last["names"][0], "svc1000.example.com", "most urgent first");
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!(
            (status.pending, status.sent),
            (0, 2_002),
            "mail and webhook"
        );
    })
    .await;
}
