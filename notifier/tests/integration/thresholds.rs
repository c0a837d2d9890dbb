//! When: thresholds fire on crossing, never skipped; short-lived certificates only when
//! renewal looks late; muted certificates stay quiet.

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{certificate, leaf, Host};
use crate::harness::{on_sqlite, settings, TestStore};
use crate::smtpd::Mailbox;

fn host() -> Host<'static> {
    Host {
        hostname: "web-1",
        address: "10.0.0.1",
        tags: &[("owner", "alice@example.com")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_first_seen_at_5_days_left_is_notified_then_at_each_crossing() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let cert = leaf(1, "late.example.com", now, Duration::days(5));
        host()
            .serves(&*t.store, now, vec![(443, vec![cert.clone()])])
            .await;
        let mailbox = Mailbox::new();
        let server = mailbox.serve();
        let notifier = t.notifier(settings(Delivery::Smtp(server.url())));

        notifier.run_once().await.expect("run");

        let mails = mailbox.to("alice@example.com");
        assert_eq!(
            mails.len(),
            1,
            "the 7-day threshold was crossed before it was seen"
        );
        assert!(mails[0]
            .subject
            .contains("late.example.com expires in 5 days"));
        let history = t
            .store
            .certificate_notifications(&cert.sha256)
            .await
            .expect("history");
        let thresholds: Vec<&str> = history.iter().map(|n| n.threshold.as_str()).collect();
        assert_eq!(thresholds, vec!["7d"], "one claim: the tightest crossed");

        t.clock.advance(Duration::days(1));
        notifier.run_once().await.expect("run");
        assert_eq!(
            mailbox.messages().len(),
            1,
            "4 days left crosses nothing new"
        );

        t.clock.advance(Duration::days(2));
        notifier.run_once().await.expect("run");
        let mails = mailbox.to("alice@example.com");
        assert_eq!(mails.len(), 2, "2 days left crossed 3");
        assert!(mails
            .iter()
            .any(|m| m.subject.contains("expires in 2 days")));

        t.clock.advance(Duration::days(3));
        notifier.run_once().await.expect("run");
        let mails = mailbox.to("alice@example.com");
        assert_eq!(
            mails.len(),
            3,
            "the 1-day threshold was missed, expiry is told"
        );
        let expired = mails
            .iter()
            .find(|m| m.subject.contains("EXPIRED"))
            .expect("expired");
        assert!(expired
            .subject
            .contains("late.example.com expired 1 day ago"));

        t.clock.advance(Duration::days(3));
        notifier.run_once().await.expect("run");
        assert_eq!(
            mailbox.messages().len(),
            3,
            "expired but still served is told once"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_alert_only_when_renewal_looks_late() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        // A 6-day certificate issued a day ago: 5 days left is normal for it.
        let cert = certificate(
            1,
            "auto.example.com",
            now + Duration::days(5),
            Duration::days(6),
        );
        host()
            .serves(&*t.store, now, vec![(443, vec![cert.clone()])])
            .await;
        let mailbox = Mailbox::new();
        let server = mailbox.serve();
        let notifier = t.notifier(settings(Delivery::Smtp(server.url())));

        notifier.run_once().await.expect("run");
        t.clock.advance(Duration::days(2));
        notifier.run_once().await.expect("run");
        assert!(
            mailbox.messages().is_empty(),
            "3 of 6 days left: renewal not late yet"
        );

        t.clock.advance(Duration::days(2));
        notifier.run_once().await.expect("run");

        let mails = mailbox.to("alice@example.com");
        assert_eq!(mails.len(), 1, "1 of 6 days left: under a third");
        assert!(
            mails[0].subject.contains("renewal late"),
            "{}",
            mails[0].subject
        );
        assert!(mails[0].mentions("automated renewal looks late"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_certificate_is_not_notified_until_its_mute_ends() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let muted = leaf(1, "retiring.example.com", now, Duration::days(10));
        let other = leaf(2, "other.example.com", now, Duration::days(10));
        host()
            .serves(
                &*t.store,
                now,
                vec![(443, vec![muted.clone()]), (444, vec![other.clone()])],
            )
            .await;
        let reason = "host decommissioned on Friday";
        let until = now + Duration::days(7);
        t.store
            .mute_certificate(&muted.sha256, reason, until)
            .await
            .expect("mutes");
        let mailbox = Mailbox::new();
        let server = mailbox.serve();
        let notifier = t.notifier(settings(Delivery::Smtp(server.url())));

        notifier.run_once().await.expect("run");

        let mails = mailbox.to("alice@example.com");
        assert_eq!(mails.len(), 1);
        assert!(mails[0].mentions(&other.sha256) && !mails[0].mentions(&muted.sha256));

        t.clock.advance(Duration::days(8));
        notifier.run_once().await.expect("run");
        let mails = mailbox.to("alice@example.com");
        assert_eq!(mails.len(), 2, "the mute ended; 2 days left crossed 3");
        assert!(mails[1].mentions(&muted.sha256), "{}", mails[1].text);
    })
    .await;
}
