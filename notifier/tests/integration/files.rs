//! Without SMTP: one `.eml` file per message; the dry run shows what would go out and
//! changes nothing; a test message goes through the same transport.

use certfleet_notifier::Delivery;
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::{on_sqlite, settings, TestStore};
use crate::smtpd::read_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_each_digest_is_one_eml_file_after_a_dry_run_that_sent_nothing() {
    on_sqlite(|t: TestStore| async move {
        let now = t.now();
        let cert = leaf(1, "files.example.com", now, Duration::days(2));
        let other = leaf(2, "billing.example.com", now, Duration::days(25));
        let alice = Host {
            hostname: "web-1",
            address: "10.0.0.1",
            tags: &[("owner", "alice@example.com")],
        };
        alice
            .serves(&*t.store, now, vec![(443, vec![cert.clone()])])
            .await;
        let billing = Host {
            hostname: "billing-1",
            address: "10.0.0.2",
            tags: &[("app", "billing")],
        };
        billing
            .serves(&*t.store, now, vec![(443, vec![other.clone()])])
            .await;
        let outbox = tempfile::tempdir().expect("temporary directory");
        let notifier = t.notifier(settings(Delivery::Files(outbox.path().to_path_buf())));

        let planned = notifier.dry_run().await.expect("dry run");

        let owners: Vec<&str> = planned.iter().map(|d| d.to.as_str()).collect();
        assert_eq!(owners, vec!["alice@example.com", "billing@example.com"]);
        assert!(planned[0]
            .subject
            .contains("files.example.com expires in 2 days"));
        assert!(
            read_dir(outbox.path()).is_empty(),
            "a dry run sends nothing"
        );
        let status = t.store.notification_status(10).await.expect("status");
        assert_eq!(status.pending + status.sent, 0, "a dry run claims nothing");

        let report = notifier.run_once().await.expect("run");

        assert_eq!(report.digests_sent, 2);
        let files = read_dir(outbox.path());
        assert_eq!(files.len(), 2);
        let alices: Vec<_> = files
            .iter()
            .filter(|m| m.to == "alice@example.com")
            .collect();
        assert_eq!(alices.len(), 1);
        assert!(alices[0].mentions(&cert.sha256));
        assert!(
            notifier.dry_run().await.expect("dry run").is_empty(),
            "all sent"
        );

        notifier
            .send_test("someone@example.com")
            .await
            .expect("test message");
        let files = read_dir(outbox.path());
        let test = files
            .iter()
            .find(|m| m.to == "someone@example.com")
            .expect("test message");
        assert_eq!(test.subject, "[certfleet] test message");
        assert!(test.text.contains("test message from certfleet"));
    })
    .await;
}
