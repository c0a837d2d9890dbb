//! A slow SMTP server and two schedulers on one PostgreSQL database: each message takes
//! longer than the lease the sending scheduler took on its notifications, while a second
//! scheduler runs again and again. Every digest still arrives exactly once.
//!
//! Unlike the other notifier tests, time is the system clock here: what is tested is a
//! lease running out in real time while a send is in progress. Nothing is asserted about
//! durations; the margins only make the race the test sets up happen every time (before
//! the fix, the second scheduler sent every digest again).

use std::sync::Arc;
use std::time::Instant;

use certfleet_notifier::{Delivery, Notifier, RunReport};
use certfleet_store::{Clock, Store, StoreOptions, SystemClock};
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::{on_postgres, settings, TestStore};
use crate::smtpd::Mailbox;

/// Owners, one certificate each: one digest per owner.
const OWNERS: usize = 4;
/// How long the scheduler's lease lasts; each message takes longer than that.
const LEASE: Duration = Duration::seconds(3);
/// How long the SMTP server takes over each message (`CERTFLEET_TEST_SMTP_DELAY_MS`).
fn smtp_delay() -> std::time::Duration {
    let millis = std::env::var("CERTFLEET_TEST_SMTP_DELAY_MS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(4_500);
    std::time::Duration::from_millis(millis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_smtp_server_and_a_second_scheduler_send_each_digest_once() {
    on_postgres(|t: TestStore| async move {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = |clock: Arc<dyn Clock>| {
            let url = t.url.clone();
            async move {
                let options = StoreOptions {
                    max_connections: 4,
                    clock,
                    ..StoreOptions::default()
                };
                certfleet_store::connect(&url, options)
                    .await
                    .expect("store opens")
            }
        };
        let seeding: Arc<dyn Store> = store(clock.clone()).await;
        let now = clock.now();
        let mut owners = Vec::new();
        for index in 0..OWNERS {
            let seed = index as u64 + 1;
            let owner = format!("owner-{index}@example.com");
            let cert = leaf(
                seed,
                &format!("svc{seed}.example.com"),
                now,
                Duration::days(4),
            );
            let address = format!("10.9.0.{}", index + 1);
            let hostname = format!("host-{index}");
            let tags = [("owner", owner.as_str())];
            let host = Host {
                hostname: &hostname,
                address: &address,
                tags: &tags,
            };
            host.serves(&*seeding, now, vec![(443, vec![cert])]).await;
            owners.push(owner);
        }

        let mailbox = Mailbox::new();
        let delay = smtp_delay();
        let smtpd = mailbox.serve_slow(delay);
        let mut run_settings = settings(Delivery::Smtp(smtpd.url()));
        run_settings.lease_for = LEASE;
        // Two digests in flight: the others wait their turn under the same lease.
        run_settings.concurrency = 2;
        let scheduler = |name: &'static str, store: Arc<dyn Store>| {
            Notifier::new(store, run_settings.clone(), clock.clone())
                .expect("valid settings")
                .with_worker(name)
        };
        let one = Arc::new(scheduler("one", store(clock.clone()).await));
        let two = scheduler("two", store(clock.clone()).await);

        // The first scheduler leases every digest and sends them slowly; once it holds
        // them, the second runs again and again meanwhile, as a second `serve --roles scheduler` would (every
        // `notify.interval`, here every quarter of a second), and once more afterwards.
        let started = Instant::now();
        let first = tokio::spawn({
            let one = one.clone();
            async move { one.run_once().await }
        });
        let database = sqlx::PgPool::connect(&t.url)
            .await
            .expect("PostgreSQL opens");
        loop {
            let leased: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notifications WHERE lease_until IS NOT NULL",
            )
            .fetch_one(&database)
            .await
            .expect("leases read");
            if leased > 0 || first.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        database.close().await;
        let mut second = Vec::new();
        while !first.is_finished() {
            second.push(two.run_once().await.expect("second scheduler runs"));
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let first = first
            .await
            .expect("first scheduler joins")
            .expect("first scheduler runs");
        second.push(two.run_once().await.expect("second scheduler runs"));

        let sent_by_two: usize = second.iter().map(|r| r.digests_sent).sum();
        let failures: Vec<_> = std::iter::once(&first)
            .chain(&second)
            .flat_map(|r: &RunReport| r.failures.clone())
            .collect();
        println!(
            "slow SMTP ({delay:?} a message, lease {LEASE}): first scheduler sent {} \
             digests, second {sent_by_two} in {} runs; {:?} in all",
            first.digests_sent,
            second.len(),
            started.elapsed()
        );
        assert!(failures.is_empty(), "{failures:?}");
        for owner in &owners {
            assert_eq!(
                mailbox.to(owner).len(),
                1,
                "{owner} gets its digest exactly once"
            );
        }
        assert_eq!(mailbox.messages().len(), OWNERS);
        let status = seeding.notification_status(10).await.expect("status");
        assert_eq!(
            (status.pending, status.sent),
            (0, OWNERS as u64),
            "{status:?}"
        );
    })
    .await;
}
