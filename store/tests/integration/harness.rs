//! Fresh stores for each test, on both backends, and the macro that runs a test on both.

use std::future::Future;
use std::sync::Arc;

use certfleet_store::{
    ManualClock, PostgresStore, ReadModel, SqliteStore, Store, StoreOptions, Zone,
};
use certfleet_testkit::postgres::ScratchDatabase;
use sqlx::{Executor, PgPool, SqlitePool};
use time::macros::datetime;

/// One test's store, its clock, and a way to run raw SQL on it.
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The store's clock; tests move it instead of sleeping.
    pub clock: ManualClock,
    /// The same database, for SQL the Store API does not offer (fault injection).
    pub raw: Raw,
}

/// Direct access to the test database.
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl TestStore {
    /// Which backend this is, for tests whose SQL differs.
    pub fn is_postgres(&self) -> bool {
        matches!(self.raw, Raw::Postgres(_))
    }

    /// Runs SQL on the test database.
    pub async fn execute(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(pool) => pool.execute(sql).await.map(drop),
            Raw::Postgres(pool) => pool.execute(sql).await.map(drop),
        }
        .expect("raw SQL runs");
    }

    /// The one number a raw query answers (a row count).
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.raw {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count query")
    }
}

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions {
        max_connections: 8,
        clock: Arc::new(clock.clone()),
        // Small enough for a test to cross; the suite's largest report has 10,000 sockets.
        max_endpoints_per_host: 12_000,
        // Every test writes change events too, so every write path runs their SQL.
        events: true,
        zones: test_zones(),
        ..StoreOptions::default()
    }
}

/// Two zones every test store knows (tests/integration/zones.rs); the other tests'
/// addresses are in none of them.
pub fn test_zones() -> Vec<Zone> {
    let zone = |name: &str, cidr: &str| Zone {
        name: name.into(),
        cidrs: vec![cidr.parse().expect("a CIDR")],
    };
    vec![
        zone("zone-a", "10.77.0.0/16"),
        zone("zone-b", "10.78.0.0/16"),
    ]
}

fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-11-27 10:00:00 UTC))
}

/// Runs a test on a fresh SQLite database in a temporary directory.
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
    let raw = Raw::Sqlite(store.pool().clone());
    let outcome = tokio::spawn(test(TestStore {
        store: Arc::new(store),
        clock,
        raw,
    }))
    .await;
    drop(directory);
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Runs a test on a fresh PostgreSQL database, dropped afterwards (best effort).
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = ScratchDatabase::create("certfleet_test").await;
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
        raw: Raw::Postgres(pool.clone()),
    }))
    .await;
    pool.close().await;
    database.drop_now().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Declares, for each named `async fn(TestStore)` of the calling module, one test on
/// SQLite and one on PostgreSQL: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    $crate::harness::on_sqlite(super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    $crate::harness::on_postgres(super::$test).await;
                }
            )*
        }
    };
}
