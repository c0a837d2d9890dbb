//! Two schedulers running at the same time on one PostgreSQL database send nothing
//! twice.

use std::collections::HashMap;

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::{notifier_on, on_postgres, settings, TestStore};
use crate::smtpd::Mailbox;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_schedulers_send_nothing_twice() {
    on_postgres(|t: TestStore| async move {
        let now = t.now();
        let mut certificates = Vec::new();
        for host in 0..30_u64 {
            let owner = format!("team{}@example.com", host % 10);
            let address = format!("10.0.2.{}", host + 1);
            let hostname = format!("host-{host}");
            let tags = [("owner", owner.as_str())];
            let first = leaf(
                host * 2 + 1,
                &format!("a{host}.example.com"),
                now,
                Duration::days(20),
            );
            let second = leaf(
                host * 2 + 2,
                &format!("b{host}.example.com"),
                now,
                Duration::days(6),
            );
            let served = vec![(443, vec![first.clone()]), (8443, vec![second.clone()])];
            let host = Host {
                hostname: &hostname,
                address: &address,
                tags: &tags,
            };
            host.serves(&*t.store, now, served).await;
            certificates.push((owner.clone(), first, 3));
            certificates.push((owner, second, 2));
        }
        let mailbox = Mailbox::new();
        let server = mailbox.serve();
        let mut settings = settings(Delivery::Smtp(server.url()));
        settings.owners_per_lease = 2;
        let one =
            notifier_on(t.another_store().await, &t.clock, settings.clone()).with_worker("one");
        let two = notifier_on(t.another_store().await, &t.clock, settings).with_worker("two");

        // Days left: 20 and 6 (30d, 7d), then 13 and -1 (14d, expired), then 6 and -8 (7d,
        // nothing): 3 notifications for the first certificate of each host, 2 for the other.
        for _ in 0..3 {
            let (a, b) = tokio::join!(one.run_once(), two.run_once());
            let (a, b) = (a.expect("first scheduler"), b.expect("second scheduler"));
            assert!(
                a.failures.is_empty() && b.failures.is_empty(),
                "{a:?} {b:?}"
            );
            t.clock.advance(Duration::days(7));
        }

        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!(
            (status.pending, status.sent),
            (0, 30 * (3 + 2)),
            "{status:?}"
        );
        let mails = mailbox.messages();
        let mut told: HashMap<(String, String), usize> = HashMap::new();
        for mail in &mails {
            for (owner, cert, _) in &certificates {
                if mail.to == *owner && mail.text.contains(&cert.sha256) {
                    *told
                        .entry((owner.clone(), cert.sha256.clone()))
                        .or_default() += 1;
                }
            }
        }
        for (owner, cert, expected) in &certificates {
            let history = t
                .store
                .certificate_notifications(&cert.sha256)
                .await
                .expect("history");
            let sent = history.iter().filter(|n| n.sent_at.is_some()).count();
            let key = (owner.clone(), cert.sha256.clone());
            assert_eq!(
                told.get(&key).copied().unwrap_or(0),
                sent,
                "{owner} {}",
                cert.sha256
            );
            assert_eq!(sent, *expected, "thresholds crossed by {}", cert.sha256);
        }
    })
    .await;
}
