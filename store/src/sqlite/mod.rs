//! The SQLite store: the embedded default, one process, no other server.
//!
//! Times are Unix seconds. Batched writes bind one JSON array of rows and read it with
//! `json_each`, so a batch of any size is one statement per table. Every write runs in
//! `BEGIN IMMEDIATE`, which takes the write lock up front (waiting up to the busy
//! timeout) instead of failing when a read transaction would have to upgrade.
//!
//! Files run in WAL mode with `synchronous = FULL` unless the options choose `NORMAL`
//! ([`SqliteSynchronous`](crate::SqliteSynchronous)): a commit is on disk when it returns.

mod ingest;
mod notify;
mod osquery;
mod probes;
mod sni;
mod static_endpoints;
mod summary;

use std::str::FromStr;

use async_trait::async_trait;
use certfleet_model::{AgentReport, OsqueryHost, OsqueryUpdate, ProbeResult};
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use time::{Duration, OffsetDateTime};

use crate::browse::*;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::notify_records::NotificationRecord;
use crate::read_model;
use crate::records::*;
use crate::rows::ReadRow;
use crate::{Store, StoreOptions};

/// A [`Store`] on SQLite; owns its connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    options: StoreOptions,
}

/// Rows per statement in batched writes.
const CHUNK: usize = 10_000;

impl SqliteStore {
    /// Opens (creating if missing) a `sqlite:` database: `sqlite://certfleet.db`,
    /// `sqlite:///abs/path.db`, or `sqlite::memory:` (one connection, gone on close).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|error| Error::invalid("database.url", error.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        if !in_memory {
            let synchronous = match options.sqlite_synchronous {
                crate::SqliteSynchronous::Full => SqliteSynchronous::Full,
                crate::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
            };
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous);
        }
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(options.max_connections)
        };
        let pool = pool_options
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(SqliteStore { pool, options })
    }

    /// The connection pool, for callers that need to run their own SQL (tests, tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn now(&self) -> OffsetDateTime {
        self.options.clock.now()
    }
}

/// A write transaction holding the database's write lock from its first statement.
async fn write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// A time as stored: Unix seconds.
fn seconds(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|error| Error::Other(Box::new(error)))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_token(&self, agent: &AgentName, host_key: Option<&str>) -> Result<String> {
        summary::create_token(&self.pool, agent, host_key, self.now()).await
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Credential>> {
        summary::authenticate(&self.pool, token).await
    }

    async fn enroll(&self, agent: &AgentName, host_key: &str) -> Result<Option<String>> {
        summary::insert_token(&self.pool, agent, Some(host_key), self.now()).await
    }

    async fn settle_conflict(&self, endpoint: EndpointId, to: Option<&str>) -> Result<u64> {
        ingest::settle_conflict(&self.pool, endpoint, to, self.now()).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        read_model::tokens(&self.pool).await
    }

    async fn revoke_tokens(&self, agent: &AgentName) -> Result<u64> {
        summary::revoke_tokens(&self.pool, agent, self.now()).await
    }

    async fn ingest_report(&self, agent: &AgentName, report: &AgentReport) -> Result<IngestCounts> {
        let bounds = ingest::Bounds {
            claim_window: self.options.claim_window,
            max_endpoints_per_host: self.options.max_endpoints_per_host,
        };
        ingest::ingest_report(&self.pool, agent, report, bounds, self.now()).await
    }

    async fn update_osquery_host(
        &self,
        host_key: &str,
        update: &OsqueryUpdate,
    ) -> Result<OsqueryHost> {
        osquery::update_osquery_host(&self.pool, host_key, update, self.now()).await
    }

    async fn lease_due_endpoints(
        &self,
        worker: &str,
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>> {
        probes::lease_due_endpoints(&self.pool, worker, limit, lease_for, self.now()).await
    }

    async fn lease_endpoints(
        &self,
        worker: &str,
        ids: &[EndpointId],
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>> {
        probes::lease_endpoints(&self.pool, worker, ids, lease_for, self.now()).await
    }

    async fn record_probe_results_with_names(
        &self,
        results: &[(EndpointId, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<u64> {
        let recorded = crate::isolate::record_isolating(self, results, None, learnt_names).await?;
        Ok(recorded.recorded)
    }

    async fn record_leased_probe_results(
        &self,
        worker: &str,
        results: &[(Lease, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<Recorded> {
        let (fence, results) = Fence::new(worker, results);
        crate::isolate::record_isolating(self, &results, Some(&fence), learnt_names).await
    }

    async fn release_leases(
        &self,
        worker: &str,
        leases: &[(Lease, OffsetDateTime)],
    ) -> Result<u64> {
        probes::release_leases(&self.pool, worker, leases).await
    }

    async fn upsert_static_endpoints(&self, endpoints: &[StaticEndpoint]) -> Result<u64> {
        static_endpoints::upsert(&self.pool, endpoints, self.now()).await
    }

    async fn certificate(&self, sha256: &str) -> Result<CertificateDetail> {
        read_model::certificate(&self.pool, sha256).await
    }

    async fn certificates_by_hostname(
        &self,
        hostname: &str,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>> {
        read_model::certificates_by_hostname(&self.pool, hostname, limit).await
    }

    async fn certificates_by_serial(
        &self,
        serial: &str,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>> {
        read_model::certificates_by_serial(&self.pool, serial, limit).await
    }

    async fn expiring_within(
        &self,
        within: Duration,
        limit: u32,
    ) -> Result<Vec<ExpiringCertificate>> {
        read_model::expiring_within(&self.pool, self.now() + within, limit).await
    }

    async fn endpoints(&self, filter: &EndpointFilter) -> Result<Vec<EndpointRecord>> {
        read_model::endpoints(&self.pool, filter).await
    }

    async fn mtls_summary(&self, by: MtlsGrouping) -> Result<MtlsSummary> {
        read_model::mtls_summary(&self.pool, by).await
    }

    async fn snapshot_mtls_adoption(&self) -> Result<u64> {
        summary::snapshot_mtls_adoption(&self.pool, self.now().date()).await
    }

    async fn retire_endpoints(&self, older_than: Duration) -> Result<u64> {
        let now = self.now();
        let mut transaction = write(&self.pool).await?;
        let result = sqlx::query(
            "UPDATE endpoints SET retired_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE retired_at IS NULL AND last_seen < $2",
        )
        .bind(seconds(now))
        .bind(seconds(now - older_than))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(result.rows_affected())
    }

    async fn inventory(&self) -> Result<Inventory> {
        read_model::inventory(&self.pool).await
    }

    async fn search_certificates(
        &self,
        search: &CertificateSearch,
    ) -> Result<Vec<CertificateRecord>> {
        read_model::search_certificates(&self.pool, search).await
    }

    async fn expiring_leaves(
        &self,
        within: Duration,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExpiringCertificate>> {
        read_model::expiring_leaves(&self.pool, self.now() + within, after, limit).await
    }

    async fn search_endpoints(&self, search: &EndpointSearch) -> Result<Vec<EndpointRecord>> {
        read_model::search_endpoints(&self.pool, search).await
    }

    async fn search_sockets(&self, search: &EndpointSearch) -> Result<Vec<SocketRecord>> {
        read_model::search_sockets(&self.pool, search).await
    }

    async fn endpoint(&self, id: EndpointId) -> Result<EndpointDetail> {
        read_model::endpoint(&self.pool, id).await
    }

    async fn certificate_history(&self, sha256: &str) -> Result<CertificateHistory> {
        read_model::certificate_history(&self.pool, sha256).await
    }

    async fn notification_page(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRecord>> {
        read_model::notification_page(&self.pool, filter).await
    }

    async fn fleet_overview(&self) -> Result<FleetOverview> {
        read_model::fleet_overview(&self.pool, self.now()).await
    }
}

impl ReadRow for SqliteRow {
    /// Days are stored as `YYYY-MM-DD` text.
    fn date(&self, column: &str) -> Result<time::Date> {
        let text = self.text(column)?;
        time::Date::parse(
            &text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| Error::other(format!("column {column}: {text:?} is not a date")))
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn boolean(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn opt_bool(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        let Some(seconds) = self.try_get::<Option<i64>, _>(column)? else {
            return Ok(None);
        };
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Some)
            .map_err(|_| Error::other(format!("column {column}: time {seconds} out of range")))
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        let Some(text) = self.try_get::<Option<String>, _>(column)? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(&text)?))
    }
}

#[async_trait]
impl crate::isolate::RecordBatch for SqliteStore {
    async fn record_batch(
        &self,
        results: &[(EndpointId, ProbeResult)],
        fence: Option<&Fence<'_>>,
        learnt_names: &[(EndpointId, String)],
    ) -> Result<Recorded> {
        let schedule = &self.options.schedule;
        let learnt = self.options.present_names.then_some(learnt_names);
        probes::record_probe_results(&self.pool, results, fence, learnt, schedule, self.now()).await
    }
}
