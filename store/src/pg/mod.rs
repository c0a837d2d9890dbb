//! The PostgreSQL store: for production and for many probers and API replicas sharing one
//! database. Batched writes bind whole columns as arrays and `UNNEST` them; leases use
//! `FOR UPDATE SKIP LOCKED`.

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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::browse::*;
use crate::error::{Error, Result};
use crate::fence::Fence;
use crate::notify_records::NotificationRecord;
use crate::read_model;
use crate::records::*;
use crate::rows::ReadRow;
use crate::{Store, StoreOptions};

/// A [`Store`] on PostgreSQL; owns its connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: StoreOptions,
}

/// Rows per statement in batched writes: large enough that a 10,000-socket report is one
/// statement, small enough to bound one statement's memory.
const CHUNK: usize = 10_000;

impl PostgresStore {
    /// Connects to a `postgres://` URL (the pool is created and one connection opened).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| Error::invalid("database.url", error.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(PostgresStore { pool, options })
    }

    /// The connection pool, for callers that need to run their own SQL (tests, tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn now(&self) -> OffsetDateTime {
        self.options.clock.now()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
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
        probes::retire_endpoints(&self.pool, self.now(), older_than).await
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

impl ReadRow for PgRow {
    fn date(&self, column: &str) -> Result<time::Date> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?
            .ok_or_else(|| Error::other(format!("column {column} is unexpectedly NULL")))
    }

    /// INTEGER columns are `int4` and counts `int8`; both read as `i64`.
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self.try_get::<Option<i64>, _>(column) {
            Ok(value) => Ok(value),
            Err(_) => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn opt_bool(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        Ok(self.try_get(column)?)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        let value: Option<Json<T>> = self.try_get(column)?;
        Ok(value.map(|Json(value)| value))
    }
}

/// A `LIMIT` argument.
fn limit(limit: u32) -> i64 {
    i64::from(limit)
}

#[async_trait]
impl crate::isolate::RecordBatch for PostgresStore {
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
