//! Fresh stores (SQLite in a temporary directory, or a uniquely named PostgreSQL database
//! dropped afterwards), one manual clock, and notifiers built on them.

use std::future::Future;
use std::sync::Arc;

use certfleet_notifier::{Delivery, Notifier, OwnerRule, OwnerRules, Settings};
use certfleet_store::{ManualClock, PostgresStore, ReadModel, SqliteStore, Store, StoreOptions};
use certfleet_testkit::postgres::ScratchDatabase;
use time::macros::datetime;
use time::OffsetDateTime;

/// One test's database and clock.
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The clock of the store and of every notifier built here.
    pub clock: ManualClock,
    /// The database URL, for a second store on the same database.
    pub url: String,
}

impl TestStore {
    /// The clock's time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// A second, independent store (own pool) on the same database and clock.
    pub async fn another_store(&self) -> Arc<dyn Store> {
        certfleet_store::connect(&self.url, options(&self.clock))
            .await
            .expect("second store opens")
    }

    /// A notifier on this store with `settings`.
    pub fn notifier(&self, settings: Settings) -> Notifier {
        notifier_on(self.store.clone(), &self.clock, settings)
    }
}

/// A notifier on `store`, reading time from `clock`.
pub fn notifier_on(store: Arc<dyn Store>, clock: &ManualClock, settings: Settings) -> Notifier {
    Notifier::new(store, settings, Arc::new(clock.clone())).expect("valid notifier settings")
}

/// Settings for tests: `app=billing` belongs to billing@example.com, hosts named `pay-*`
/// to payments@example.com, the default owner is ops@example.com; links point to
/// https://certfleet.test; retries wait a minute, doubling.
pub fn settings(delivery: Delivery) -> Settings {
    let rules = vec![
        OwnerRule {
            app: Some("billing".into()),
            email: "billing@example.com".into(),
            ..OwnerRule::default()
        },
        OwnerRule {
            hostname: Some("pay-*".into()),
            email: "payments@example.com".into(),
            ..OwnerRule::default()
        },
    ];
    let owners = OwnerRules::new(rules, "ops@example.com").expect("valid rules");
    Settings {
        delivery,
        base_url: "https://certfleet.test/".into(),
        from: "certfleet@example.com".into(),
        ..Settings::new(owners)
    }
}

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions {
        max_connections: 8,
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    }
}

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-27 10:00:00 UTC))
}

/// Runs a test on a fresh SQLite database.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("store.db").display());
    let clock = clock();
    let store = SqliteStore::connect(&url, options(&clock))
        .await
        .expect("SQLite opens");
    store.migrate().await.expect("SQLite migrates");
    let outcome = tokio::spawn(test(TestStore {
        store: Arc::new(store),
        clock,
        url,
    }))
    .await;
    drop(directory);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Runs a test on a fresh PostgreSQL database (from `CERTFLEET_TEST_POSTGRES_URL`),
/// dropped afterwards.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = ScratchDatabase::create("certfleet_notifier_test").await;
    let url = database.url.clone();
    let clock = clock();
    let store = PostgresStore::connect(&url, options(&clock))
        .await
        .expect("PostgreSQL opens");
    store.migrate().await.expect("PostgreSQL migrates");
    let pool = store.pool().clone();
    let outcome = tokio::spawn(test(TestStore {
        store: Arc::new(store),
        clock,
        url,
    }))
    .await;
    pool.close().await;
    database.drop_now().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
