//! The databases the service runs on in these tests: a SQLite file in a temporary folder,
//! or a fresh PostgreSQL database (dropped afterwards) on the server named by
//! `CERTFLEET_TEST_POSTGRES_URL`. The test reads what the service wrote through the same
//! `Store` API, from its own connection.

use std::path::Path;
use std::sync::Arc;

use certfleet_store::{Store, StoreOptions};
use certfleet_testkit::postgres::ScratchDatabase;
use tempfile::TempDir;

/// A database for one test, and a folder for its config and logs.
pub struct TestDatabase {
    pub url: String,
    pub dir: TempDir,
    /// The PostgreSQL database to drop at the end (the shared per-test harness).
    postgres: Option<ScratchDatabase>,
}

impl TestDatabase {
    /// A SQLite file in a new temporary folder (created by the service's migration).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
        TestDatabase {
            url,
            dir,
            postgres: None,
        }
    }

    /// A new, empty database `certfleet_e2e_...` on the test PostgreSQL server.
    pub fn postgres() -> TestDatabase {
        let database = runtime().block_on(ScratchDatabase::create("certfleet_e2e"));
        TestDatabase {
            url: database.url.clone(),
            dir: tempfile::tempdir().expect("temporary folder"),
            postgres: Some(database),
        }
    }

    /// The folder for the config file and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn kind(&self) -> &'static str {
        match self.postgres {
            Some(_) => "postgres",
            None => "sqlite",
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(database) = self.postgres.take() {
            runtime().block_on(database.drop_now());
        }
    }
}

/// Opens the store at `url` (already migrated by the service) with a small pool.
pub fn open_store(url: &str) -> Arc<dyn Store> {
    let options = StoreOptions {
        max_connections: 2,
        ..StoreOptions::default()
    };
    runtime()
        .block_on(certfleet_store::connect(url, options))
        .unwrap_or_else(|error| panic!("open the store at {url}: {error}"))
}

/// The runtime the tests drive the store with (they are synchronous `#[test]`s).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for store access")
    })
}

/// 16 hex digits from the OS's random source, for unique database names and secrets.
pub fn random_hex() -> String {
    certfleet_testkit::random_hex(8)
}

/// The one number a `SELECT count(*) ...` answers.
pub fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    let (count,): (i64,) = runtime()
        .block_on(sqlx::query_as(sql).fetch_one(pool))
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    count
}
