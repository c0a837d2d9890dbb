//! A rotated certificate stops being notified; its owner is told it is resolved.

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{leaf, reprobe, Host};
use crate::harness::{on_sqlite, settings, TestStore};
use crate::smtpd::{free_port, url, Mailbox};

fn host() -> Host<'static> {
    Host {
        hostname: "web-1",
        address: "10.0.0.1",
        tags: &[("owner", "alice@example.com")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_stops_being_notified() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let old = leaf(1, "api.example.com", now, Duration::days(10));
        let endpoints = host()
            .serves(&*t.store, now, vec![(443, vec![old.clone()])])
            .await;
        let mailbox = Mailbox::new();
        let server = mailbox.serve();
        let notifier = t.notifier(settings(Delivery::Smtp(server.url())));
        notifier.run_once().await.expect("run");
        assert_eq!(
            mailbox.to("alice@example.com").len(),
            1,
            "told at 10 days left"
        );

        let renewed = leaf(2, "api.example.com", t.now(), Duration::days(90));
        reprobe(&*t.store, endpoints[0], vec![renewed], t.now()).await;
        t.clock.advance(Duration::days(5));
        notifier.run_once().await.expect("run");

        let mails = mailbox.to("alice@example.com");
        assert_eq!(mails.len(), 2, "one 'no longer served' notice");
        assert!(mails[1]
            .subject
            .contains("resolved: api.example.com is no longer served"));
        assert!(!mails[1].text.contains("expires in"), "{}", mails[1].text);
        t.clock.advance(Duration::days(10));
        notifier.run_once().await.expect("run");
        assert_eq!(
            mailbox.messages().len(),
            2,
            "the old certificate is never told again"
        );
        let history = t
            .store
            .certificate_notifications(&old.sha256)
            .await
            .expect("history");
        assert!(
            history.iter().all(|n| n.resolved_at.is_some()),
            "{history:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_notification_resolves_when_the_endpoint_serves_a_new_certificate() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let old = leaf(1, "api.example.com", now, Duration::days(10));
        let endpoints = host()
            .serves(&*t.store, now, vec![(443, vec![old.clone()])])
            .await;
        let port = free_port();
        let notifier = t.notifier(settings(Delivery::Smtp(url(port))));
        let report = notifier
            .run_once()
            .await
            .expect("run with the SMTP server down");
        assert_eq!(report.failures.len(), 1);

        let renewed = leaf(2, "api.example.com", t.now(), Duration::days(90));
        reprobe(&*t.store, endpoints[0], vec![renewed], t.now()).await;
        let mailbox = Mailbox::new();
        let _server = crate::smtpd::Smtpd::start(port, &mailbox.path());
        t.clock.advance(Duration::hours(2));
        let report = notifier.run_once().await.expect("run");

        assert_eq!(report.resolved, 1, "{report:?}");
        assert!(
            mailbox.messages().is_empty(),
            "nothing to tell: the owner never heard of it"
        );
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!((status.pending, status.failing), (0, 0));
    })
    .await;
}
