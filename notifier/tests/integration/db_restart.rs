//! PostgreSQL killed (SIGKILL, every backend at once) in the middle of a notification run
//! and started again: every due digest reaches the SMTP server (aiosmtpd) exactly once.
//! A private PostgreSQL server (never the shared one) is run for this test; it is skipped,
//! saying so, where PostgreSQL cannot be run.

use std::sync::Arc;
use std::time::Instant;

use certfleet_notifier::{Delivery, Notifier};
use certfleet_store::{ManualClock, PostgresStore, Store, StoreOptions};
use time::macros::datetime;
use time::Duration;

use crate::fleet::{leaf, Host};
use crate::harness::settings;
use crate::private_pg::PrivatePostgres;
use crate::smtpd::Mailbox;

/// Owners, one certificate each: one digest per owner.
const OWNERS: usize = 200;
/// Bound on each stage; never reached when things work.
const STAGE_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_postgres_mid_run_sends_every_digest_exactly_once() {
    let mut postgres = match PrivatePostgres::start() {
        Ok(postgres) => postgres,
        Err(why) => {
            certfleet_testkit::skip(&format!("cannot run a private PostgreSQL here: {why}"));
            return;
        }
    };
    let clock = ManualClock::new(datetime!(2026-11-27 10:00:00 UTC));
    let options = StoreOptions {
        max_connections: 8,
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(&postgres.url(), options)
            .await
            .expect("PostgreSQL opens"),
    );
    store.migrate().await.expect("PostgreSQL migrates");
    let now = clock.now();
    for index in 0..OWNERS {
        let seed = index as u64 + 1;
        let owner = format!("owner-{index:04}@example.com");
        let cert = leaf(
            seed,
            &format!("svc{seed}.example.com"),
            now,
            Duration::days(4),
        );
        let address = format!("10.7.{}.{}", index / 250, index % 250 + 1);
        let hostname = format!("host-{index:04}");
        let tags = [("owner", owner.as_str())];
        let host = Host {
            hostname: &hostname,
            address: &address,
            tags: &tags,
        };
        host.serves(&*store, now, vec![(443, vec![cert])]).await;
    }
    let mailbox = Mailbox::new();
    let smtpd = mailbox.serve();
    let mut run_settings = settings(Delivery::Smtp(smtpd.url()));
    run_settings.concurrency = 4;
    let notifier = Arc::new(
        Notifier::new(store.clone(), run_settings, Arc::new(clock.clone()))
            .expect("valid settings"),
    );

    // The run starts; once a quarter of the digests are out, PostgreSQL dies.
    let run = tokio::spawn({
        let notifier = notifier.clone();
        async move { notifier.run_once().await }
    });
    let started = Instant::now();
    while mailbox.messages().len() < OWNERS / 4 && !run.is_finished() {
        assert!(started.elapsed() < STAGE_LIMIT, "no digest went out");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let sent_before_kill = mailbox.messages().len();
    assert!(
        sent_before_kill < OWNERS && !run.is_finished(),
        "the run ended before PostgreSQL was killed ({sent_before_kill} sent)"
    );
    let mut postgres = tokio::task::spawn_blocking(move || {
        postgres.kill();
        postgres
    })
    .await
    .expect("kill PostgreSQL");
    // The run goes on sending while the database is away (what it had leased), and
    // cannot record those deliveries; PostgreSQL stays down until a few more are out, or
    // the run gave up, or a bound passed.
    let down = Instant::now();
    while mailbox.messages().len() < sent_before_kill + 8
        && !run.is_finished()
        && down.elapsed() < std::time::Duration::from_secs(5)
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let sent_while_down = mailbox.messages().len() - sent_before_kill;
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart();
        postgres
    })
    .await
    .expect("restart PostgreSQL");
    let interrupted = run.await.expect("the run's task");
    let sent_by_the_run = mailbox.messages().len();

    // Later runs (the clock past the interrupted run's leases and retry times) send the
    // rest, and nothing twice.
    let mut runs = 0;
    loop {
        let status = store.notification_status(10).await;
        if let Ok(status) = &status {
            if status.sent == OWNERS as u64 && status.pending == 0 {
                break;
            }
        }
        assert!(
            started.elapsed() < STAGE_LIMIT,
            "not everything sent: {status:?}\nPostgreSQL log:\n{}",
            postgres.log()
        );
        clock.advance(Duration::minutes(15));
        let _ = notifier.run_once().await;
        runs += 1;
    }
    notifier.run_once().await.expect("a run with nothing left");
    let messages = mailbox.messages();
    let mut duplicates = Vec::new();
    let mut missing = Vec::new();
    for index in 0..OWNERS {
        let owner = format!("owner-{index:04}@example.com");
        match mailbox.to(&owner).len() {
            1 => {}
            0 => missing.push(owner),
            n => duplicates.push(format!("{owner}: {n}")),
        }
    }
    eprintln!(
        "notify outage: {OWNERS} digests due; {sent_before_kill} sent before the kill, \
         {sent_while_down} while PostgreSQL was down, {sent_by_the_run} by the end of the \
         interrupted run ({}), {} in all after {runs} more runs; {} duplicated, {} missing",
        match &interrupted {
            Ok(report) => format!("it ended: {} sent", report.digests_sent),
            Err(error) => format!("it failed: {error}"),
        },
        messages.len(),
        duplicates.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "digests never sent: {missing:?}");
    assert!(duplicates.is_empty(), "digests sent twice: {duplicates:?}");
    assert_eq!(messages.len(), OWNERS);
    drop(smtpd);
}
