//! The databases the service runs on in these tests: a SQLite file in a temporary folder,
//! or a fresh PostgreSQL database (dropped afterwards) on the server named by
//! `CERTFLEET_TEST_POSTGRES_URL`. The test reads what the service wrote through the same
//! `Store` API, from its own connection.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use certfleet_store::{Store, StoreOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use tempfile::TempDir;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database for one test, and a folder for its config and logs.
pub struct TestDatabase {
    pub url: String,
    pub dir: TempDir,
    /// `(admin URL, database name)` of a PostgreSQL database to drop at the end.
    postgres: Option<(String, String)>,
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

    /// A new, empty database `certfleet_e2e_<random>` on the test PostgreSQL server.
    pub fn postgres() -> TestDatabase {
        let admin_url = std::env::var("CERTFLEET_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let admin = PgConnectOptions::from_str(&admin_url).expect("CERTFLEET_TEST_POSTGRES_URL");
        let name = format!("certfleet_e2e_{}", random_hex());
        runtime().block_on(async {
            let mut connection = admin.connect().await.unwrap_or_else(|error| {
                panic!("PostgreSQL at CERTFLEET_TEST_POSTGRES_URL ({admin_url}): {error}")
            });
            connection
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create the test database");
            let _ = connection.close().await;
        });
        let url = admin.database(&name).to_url_lossy().to_string();
        TestDatabase {
            url,
            dir: tempfile::tempdir().expect("temporary folder"),
            postgres: Some((admin_url, name)),
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
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        let Ok(admin) = PgConnectOptions::from_str(&admin_url) else {
            return;
        };
        runtime().block_on(async {
            if let Ok(mut connection) = admin.connect().await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = connection.execute(drop.as_str()).await;
                let _ = connection.close().await;
            }
        });
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
