//! With the SMTP server down for a while, every notification arrives once it is back,
//! and the failures are visible with their reason meanwhile.

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::{on_sqlite, settings, TestStore};
use crate::smtpd::{free_port, url, Mailbox, Smtpd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_smtp_server_down_every_notification_arrives_once_it_is_back() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let owners = ["a@example.com", "b@example.com", "c@example.com"];
        let mut certificates = Vec::new();
        for (index, owner) in owners.iter().enumerate() {
            let seed = index as u64 + 1;
            let cert = leaf(
                seed,
                &format!("svc{seed}.example.com"),
                now,
                Duration::days(4),
            );
            let address = format!("10.0.1.{seed}");
            let hostname = format!("host-{seed}");
            let tags = [("owner", *owner)];
            let host = Host {
                hostname: &hostname,
                address: &address,
                tags: &tags,
            };
            host.serves(&*t.store, now, vec![(443, vec![cert.clone()])])
                .await;
            certificates.push(cert);
        }
        let port = free_port();
        let notifier = t.notifier(settings(Delivery::Smtp(url(port))));

        let down = notifier
            .run_once()
            .await
            .expect("a run with SMTP down still completes");

        assert_eq!(down.digests_sent, 0);
        assert_eq!(down.failures.len(), 3, "{down:?}");
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!((status.pending, status.failing, status.sent), (3, 3, 0));
        let reason = status.failures[0].last_error.clone().unwrap_or_default();
        assert!(
            reason.contains("SMTP") && reason.to_lowercase().contains("refused"),
            "{reason}"
        );
        assert_eq!(status.next_attempt_at, Some(now + Duration::minutes(1)));

        t.clock.advance(Duration::minutes(1));
        let still_down = notifier.run_once().await.expect("run");
        assert_eq!(still_down.failures.len(), 3);
        let status = t.store.notification_status(10).await.expect("status");
        assert!(status.failures.iter().all(|n| n.attempts == 2));
        assert_eq!(
            status.next_attempt_at,
            Some(t.now() + Duration::minutes(2)),
            "backs off"
        );
        let waiting = notifier.run_once().await.expect("run");
        assert!(
            waiting.failures.is_empty(),
            "nothing is attempted before its retry time"
        );

        let mailbox = Mailbox::new();
        let _server = Smtpd::start(port, &mailbox.path());
        t.clock.advance(Duration::minutes(2));
        let back = notifier.run_once().await.expect("run");

        assert_eq!(
            (back.digests_sent, back.notifications_sent),
            (3, 3),
            "{back:?}"
        );
        for (owner, cert) in owners.iter().zip(&certificates) {
            let mails = mailbox.to(owner);
            assert_eq!(mails.len(), 1, "{owner}");
            assert!(mails[0].mentions(&cert.sha256));
        }
        notifier.run_once().await.expect("run");
        assert_eq!(mailbox.messages().len(), 3, "delivered exactly once");
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!((status.pending, status.failing, status.sent), (0, 0, 3));
    })
    .await;
}
