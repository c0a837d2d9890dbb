//! The one store type, generic over its pool ([`Db`]): [`crate::PostgresStore`] and
//! [`crate::SqliteStore`] are `SqlStore<PgPool>` and `SqlStore<SqlitePool>`. Each method
//! hands its work to the read model ([`crate::read_model`]) or to the writes
//! ([`crate::write`]), both written once against [`Db`].

use async_trait::async_trait;
use certfleet_model::{AgentReport, OsqueryHost, OsqueryUpdate, ProbeResult};
use time::{Duration, OffsetDateTime};

use crate::browse::*;
use crate::db::{plain, Db};
use crate::error::Result;
use crate::fence::Fence;
use crate::isolate::{record_isolating, RecordBatch};
use crate::notify_records::NotificationRecord;
use crate::probers::{self, ProberBeat, ProberStatus};
use crate::read_model;
use crate::records::*;
use crate::write;
use crate::{IngestStore, ProbeQueue, ReadModel, StoreOptions};

/// A [`Store`](crate::Store) on a SQL database; owns its connection pool.
#[derive(Debug, Clone)]
pub struct SqlStore<P> {
    pool: P,
    options: StoreOptions,
}

impl<P> SqlStore<P> {
    pub(crate) fn new(pool: P, options: StoreOptions) -> Self {
        SqlStore { pool, options }
    }

    /// The connection pool, for callers that need to run their own SQL (tests, tools).
    pub fn pool(&self) -> &P {
        &self.pool
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.options
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.options.clock.now()
    }
}

#[async_trait]
impl<D: Db> IngestStore for SqlStore<D> {
    async fn create_token(&self, agent: &AgentName, host_key: Option<&str>) -> Result<String> {
        write::tokens::create_token(&self.pool, agent, TokenKind::Agent, host_key, self.now()).await
    }

    async fn create_operator_token(&self, operator: &AgentName) -> Result<String> {
        let kind = TokenKind::Operator;
        write::tokens::create_token(&self.pool, operator, kind, None, self.now()).await
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Credential>> {
        write::tokens::authenticate(&self.pool, token).await
    }

    async fn enroll(&self, agent: &AgentName, host_key: &str) -> Result<Option<String>> {
        let kind = TokenKind::Agent;
        write::tokens::insert_token(&self.pool, agent, kind, Some(host_key), self.now()).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        read_model::tokens(&self.pool).await
    }

    async fn revoke_tokens(&self, agent: &AgentName) -> Result<u64> {
        write::tokens::revoke_tokens(&self.pool, agent, self.now()).await
    }

    async fn ingest_report(&self, agent: &AgentName, report: &AgentReport) -> Result<IngestCounts> {
        let bounds = write::ingest::Bounds {
            claim_window: self.options.claim_window,
            max_endpoints_per_host: self.options.max_endpoints_per_host,
            events: self.options.events,
        };
        let now = self.now();
        let mut counts = write::ingest::ingest_report(
            &self.pool,
            agent,
            report,
            bounds,
            &self.options.zones,
            now,
        )
        .await?;
        // Every report, probes or none: endpoints its agent stopped probing go back to
        // the probers.
        let schedule = &self.options.schedule;
        let probes = write::agent_probes::record_agent_probes(
            &self.pool,
            report,
            schedule,
            self.options.events,
            now,
        )
        .await?;
        counts.probes = probes.recorded;
        counts.probes_refused = probes.refused;
        Ok(counts)
    }

    async fn update_osquery_host(
        &self,
        host_key: &str,
        update: &OsqueryUpdate,
    ) -> Result<OsqueryHost> {
        write::osquery::update_osquery_host(&self.pool, host_key, update, self.now()).await
    }

    async fn upsert_static_endpoints(&self, endpoints: &[StaticEndpoint]) -> Result<u64> {
        let events = self.options.events;
        let zones = &self.options.zones;
        write::static_endpoints::upsert(&self.pool, endpoints, zones, self.now(), events).await
    }

    async fn retire_endpoints(&self, older_than: Duration) -> Result<u64> {
        let events = self.options.events;
        write::leases::retire_endpoints(&self.pool, self.now(), older_than, events).await
    }

    async fn settle_conflict(&self, endpoint: EndpointId, to: Option<&str>) -> Result<u64> {
        write::ingest::settle_conflict(&self.pool, endpoint, to, self.now()).await
    }
}

#[async_trait]
impl<D: Db> ProbeQueue for SqlStore<D> {
    async fn lease_due_in_zones(
        &self,
        worker: &str,
        zones: &[String],
        limit: u32,
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>> {
        let now = self.now();
        write::leases::lease_due_endpoints(&self.pool, worker, zones, limit, lease_for, now).await
    }

    async fn lease_endpoints(
        &self,
        worker: &str,
        ids: &[EndpointId],
        lease_for: Duration,
    ) -> Result<Vec<LeasedEndpoint>> {
        write::leases::lease_endpoints(&self.pool, worker, ids, lease_for, self.now()).await
    }

    async fn record_probe_results_with_names(
        &self,
        results: &[(EndpointId, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<u64> {
        let recorded = record_isolating(self, results, None, learnt_names).await?;
        Ok(recorded.recorded)
    }

    async fn record_leased_probe_results(
        &self,
        worker: &str,
        results: &[(Lease, ProbeResult)],
        learnt_names: &[(EndpointId, String)],
    ) -> Result<Recorded> {
        let (fence, results) = Fence::new(worker, results);
        record_isolating(self, &results, Some(&fence), learnt_names).await
    }

    async fn request_probe(&self, id: EndpointId, window: Duration) -> Result<ProbeRequest> {
        write::leases::request_probe(&self.pool, id, window, self.now()).await
    }

    async fn announce_prober(&self, beat: &ProberBeat) -> Result<()> {
        probers::announce(&self.pool, beat, self.now()).await
    }

    async fn release_leases(
        &self,
        worker: &str,
        leases: &[(Lease, OffsetDateTime)],
    ) -> Result<u64> {
        write::leases::release_leases(&self.pool, worker, leases).await
    }
}

#[async_trait]
impl<D: Db> ReadModel for SqlStore<D> {
    async fn migrate(&self) -> Result<()> {
        self.pool.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        self.pool.rows(&plain("SELECT 1")).await?;
        Ok(())
    }

    async fn certificate(&self, sha256: &str) -> Result<CertificateDetail> {
        read_model::certificate(&self.pool, sha256).await
    }

    async fn endpoints(&self, filter: &EndpointFilter) -> Result<Vec<EndpointRecord>> {
        read_model::endpoints(&self.pool, filter).await
    }

    async fn mtls_summary(&self, by: MtlsGrouping) -> Result<MtlsSummary> {
        read_model::mtls_summary(&self.pool, by).await
    }

    async fn snapshot_mtls_adoption(&self) -> Result<u64> {
        write::tokens::snapshot_mtls_adoption(&self.pool, self.now().date()).await
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

    async fn export_page(&self, page: &ExportPage) -> Result<ExportRows> {
        read_model::export_page(&self.pool, page).await
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
        let now = self.now();
        let mut overview = read_model::fleet_overview(&self.pool, now).await?;
        overview.zones = probers::status(&self.pool, &self.options.zones, now)
            .await?
            .zones;
        Ok(overview)
    }

    async fn save_overview(&self, overview: &FleetOverview) -> Result<()> {
        read_model::save_overview(&self.pool, overview).await
    }

    async fn saved_overview(&self) -> Result<Option<FleetOverview>> {
        read_model::saved_overview(&self.pool).await
    }

    async fn prober_status(&self) -> Result<ProberStatus> {
        probers::status(&self.pool, &self.options.zones, self.now()).await
    }
}

#[async_trait]
impl<D: Db> RecordBatch for SqlStore<D> {
    async fn record_batch(
        &self,
        results: &[(EndpointId, ProbeResult)],
        fence: Option<&Fence<'_>>,
        learnt_names: &[(EndpointId, String)],
    ) -> Result<Recorded> {
        let schedule = &self.options.schedule;
        let learnt = self.options.present_names.then_some(learnt_names);
        write::probes::record_probe_results(
            &self.pool,
            results,
            fence,
            learnt,
            schedule,
            self.options.events,
            self.now(),
        )
        .await
    }
}
