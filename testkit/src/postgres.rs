//! A fresh database per test on the shared test PostgreSQL server
//! (`CERTFLEET_TEST_POSTGRES_URL`, default the local server `scripts/test` starts).

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database `<prefix>_<pid>_<n>_<nanoseconds>` that no other test uses; call
/// [`drop_now`](ScratchDatabase::drop_now) once its pools are closed.
pub struct ScratchDatabase {
    pub url: String,
    name: String,
    admin: PgConnection,
}

impl ScratchDatabase {
    pub async fn create(prefix: &str) -> ScratchDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url =
            std::env::var("CERTFLEET_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let options = PgConnectOptions::from_str(&admin_url).expect("CERTFLEET_TEST_POSTGRES_URL");
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
        let name = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = options.connect().await.unwrap_or_else(|error| {
            panic!("PostgreSQL at CERTFLEET_TEST_POSTGRES_URL ({admin_url}): {error}")
        });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|error| panic!("create the test database {name}: {error}"));
        let url = options.database(&name).to_url_lossy().to_string();
        ScratchDatabase { url, name, admin }
    }

    /// Drops the database (best effort: forcing out connections still open).
    pub async fn drop_now(mut self) {
        let _ = self
            .admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await;
        let _ = self.admin.close().await;
    }
}
