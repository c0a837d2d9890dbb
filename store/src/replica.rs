//! Read replicas (`database.read_url`): [`Replicated`] is a [`ReadModel`] that answers the
//! API's reads and `export` from a PostgreSQL streaming replica, and from the primary
//! whenever the replica is down or further behind than `database.read_max_lag`. Writes,
//! leases, tokens and the notification outbox never see it: they stay on the primary's
//! [`Store`]. The upkeep of [`ReadModel`] (`migrate`, `ping`, the daily mTLS snapshot,
//! which writes) goes to the primary too.
//!
//! [`Replicated::watch`] checks the replica every `check_every`: whether it answers, and
//! how far behind it is ([`crate::replica_lag`]). A read goes to the replica only when the
//! last check found it up and its known freshness is within the bound at the time of the
//! read; a read the replica fails as unavailable is asked again of the primary. Every read
//! the primary answers instead is counted ([`ReplicaStatus::fallback_reads`]).

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::Duration as Span;

use crate::browse::*;
use crate::error::{Error, Result};
use crate::notify_records::NotificationRecord;
use crate::records::*;
use crate::replica_lag::LagTracker;
use crate::store::SqlStore;
use crate::{PostgresStore, ReadModel, Store, StoreOptions};

/// How long a read waits for a replica connection before the primary answers it instead:
/// a replica that cannot hand out a connection within this is as good as down.
const REPLICA_ACQUIRE: Duration = Duration::from_secs(1);

/// Bound on one check of the replica (or of the primary's position).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The primary's WAL position, as a number (bytes since `0/0`).
const PRIMARY_POSITION: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8";

/// The replica's replayed WAL position; a server not in recovery (the URL names a primary)
/// answers its own current position.
const REPLICA_POSITION: &str = "SELECT (CASE WHEN pg_is_in_recovery() \
     THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::int8";

/// How stale a replica's reads may be, and how often that is checked.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaOptions {
    /// Reads go to the primary while the replica is further behind than this
    /// (`database.read_max_lag`).
    pub max_lag: Duration,
    /// How often the replica is checked.
    pub check_every: Duration,
}

impl ReplicaOptions {
    /// Checks a quarter of `max_lag` apart, between 50 ms and 1 s: a stalled replica is
    /// left well before its reads are older than the bound.
    pub fn new(max_lag: Duration) -> Self {
        let check_every = (max_lag / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        ReplicaOptions {
            max_lag,
            check_every,
        }
    }
}

/// The replica as the last check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// It answered the last check.
    pub up: bool,
    /// How far behind it is now; `None` until it has caught up with the primary once.
    pub lag: Option<Duration>,
    /// The bound beyond which reads go to the primary.
    pub max_lag: Duration,
    /// Reads the primary answered because the replica was down or behind, since start.
    pub fallback_reads: u64,
}

impl ReplicaStatus {
    /// True when reads go to the replica.
    pub fn serves_reads(&self) -> bool {
        self.up && self.lag.is_some_and(|lag| lag <= self.max_lag)
    }
}

/// What the checks found.
#[derive(Debug, Default)]
struct Watch {
    up: bool,
    lag: LagTracker,
    /// Whether reads went to the replica after the last check (logged when it changes).
    serving: bool,
}

/// A [`ReadModel`] over a primary and a streaming replica of it (see the module).
#[derive(Debug)]
pub struct Replicated {
    primary: PostgresStore,
    replica: PostgresStore,
    options: ReplicaOptions,
    watch: Mutex<Watch>,
    fallback_reads: AtomicU64,
}

/// Opens the primary (`url`, the store every write goes to) and, lazily, the replica
/// (`read_url`): the service starts while the replica is down, and reads from the primary
/// until it answers. Both must be PostgreSQL. Does not migrate.
pub async fn connect_with_replica(
    url: &str,
    read_url: &str,
    options: StoreOptions,
    replica: ReplicaOptions,
) -> Result<(Arc<dyn Store>, Arc<Replicated>)> {
    check_read_url(url, read_url)?;
    let primary = PostgresStore::connect(url, options.clone()).await?;
    let connect = PgConnectOptions::from_str(read_url)
        .map_err(|error| Error::invalid("database.read_url", error.to_string()))?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(REPLICA_ACQUIRE.min(options.acquire_timeout))
        .connect_lazy_with(connect);
    let replicated = Replicated::new(primary.clone(), SqlStore::new(pool, options), replica);
    Ok((Arc::new(primary), Arc::new(replicated)))
}

/// Refuses a `read_url` unless both it and `url` name PostgreSQL: SQLite has no replicas.
pub fn check_read_url(url: &str, read_url: &str) -> Result<()> {
    if !is_postgres(url) {
        return Err(Error::invalid(
            "database.read_url",
            "a read replica needs database.url to be PostgreSQL (SQLite has no replicas)",
        ));
    }
    if !is_postgres(read_url) {
        return Err(Error::invalid(
            "database.read_url",
            "must start with postgres:// or postgresql://",
        ));
    }
    Ok(())
}

fn is_postgres(url: &str) -> bool {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    scheme
        .is_some_and(|s| s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql"))
}

impl Replicated {
    /// Reads from `replica` while it keeps up with `primary`. Until the first check, every
    /// read goes to the primary.
    pub fn new(primary: PostgresStore, replica: PostgresStore, options: ReplicaOptions) -> Self {
        Replicated {
            primary,
            replica,
            options,
            watch: Mutex::new(Watch::default()),
            fallback_reads: AtomicU64::new(0),
        }
    }

    /// The replica as the last check found it, its lag counted to now.
    pub fn status(&self) -> ReplicaStatus {
        let watch = self.lock();
        ReplicaStatus {
            up: watch.up,
            lag: watch.lag.lag(Instant::now()),
            max_lag: self.options.max_lag,
            fallback_reads: self.fallback_reads.load(Ordering::Relaxed),
        }
    }

    /// Checks the replica now: reads the primary's WAL position, then the replica's.
    pub async fn check(&self) -> ReplicaStatus {
        let asked = Instant::now();
        match position(&self.primary, PRIMARY_POSITION).await {
            Ok(Some(at)) => self.lock().lag.primary_at(asked, at),
            // Without the primary's position the lag cannot move forward; it grows.
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, "replica check: primary position unknown"),
        }
        let replayed = position(&self.replica, REPLICA_POSITION).await;
        let mut watch = self.lock();
        match &replayed {
            Ok(position) => {
                if !watch.up {
                    tracing::info!("read replica answers");
                }
                watch.up = true;
                if let Some(position) = position {
                    watch.lag.replayed(*position);
                }
            }
            Err(error) => {
                if watch.up {
                    tracing::warn!(%error, "read replica down: reads go to the primary");
                }
                watch.up = false;
            }
        }
        let lag = watch.lag.lag(Instant::now());
        let status = ReplicaStatus {
            up: watch.up,
            lag,
            max_lag: self.options.max_lag,
            fallback_reads: self.fallback_reads.load(Ordering::Relaxed),
        };
        if status.serves_reads() != watch.serving {
            watch.serving = status.serves_reads();
            match (watch.serving, lag) {
                (true, _) => tracing::info!(?lag, "reads go to the replica"),
                (false, Some(lag)) if status.up => {
                    let max_lag = self.options.max_lag;
                    tracing::warn!(
                        ?lag,
                        ?max_lag,
                        "read replica behind: reads go to the primary"
                    );
                }
                (false, _) => {}
            }
        }
        status
    }

    /// Checks the replica every `check_every` until `stop` completes.
    pub async fn watch(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            self.check().await;
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.options.check_every) => {}
            }
        }
    }

    /// The replica when reads go to it now.
    fn replica_for_read(&self) -> Option<&PostgresStore> {
        self.status().serves_reads().then_some(&self.replica)
    }

    /// A read the replica could not answer: it is down until the next check says
    /// otherwise.
    fn replica_failed(&self, error: &Error) {
        let mut watch = self.lock();
        if watch.up {
            tracing::warn!(%error, "read replica failed a read: reads go to the primary");
        }
        watch.up = false;
    }

    /// The primary, for a read the replica does not answer (counted).
    fn fallback(&self) -> &PostgresStore {
        self.fallback_reads.fetch_add(1, Ordering::Relaxed);
        &self.primary
    }

    fn lock(&self) -> MutexGuard<'_, Watch> {
        self.watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A WAL position, within [`CHECK_TIMEOUT`].
async fn position(store: &PostgresStore, sql: &str) -> Result<Option<i64>> {
    let query = sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(store.pool());
    match tokio::time::timeout(CHECK_TIMEOUT, query).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(Error::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}

/// Runs a read on the replica when it serves reads, and on the primary otherwise or when
/// the replica turns out to be unavailable.
macro_rules! read {
    ($self:ident, $store:ident => $call:expr) => {{
        if let Some($store) = $self.replica_for_read() {
            match $call.await {
                Err(error) if error.is_unavailable() => $self.replica_failed(&error),
                answer => return answer,
            }
        }
        let $store = $self.fallback();
        $call.await
    }};
}

#[async_trait]
impl ReadModel for Replicated {
    /// The primary's: a replica receives the schema through replication.
    async fn migrate(&self) -> Result<()> {
        self.primary.migrate().await
    }

    /// The primary's: the process is ready when the database it writes to answers.
    async fn ping(&self) -> Result<()> {
        self.primary.ping().await
    }

    async fn certificate(&self, sha256: &str) -> Result<CertificateDetail> {
        read!(self, store => store.certificate(sha256))
    }

    async fn endpoints(&self, filter: &EndpointFilter) -> Result<Vec<EndpointRecord>> {
        read!(self, store => store.endpoints(filter))
    }

    async fn mtls_summary(&self, by: MtlsGrouping) -> Result<MtlsSummary> {
        read!(self, store => store.mtls_summary(by))
    }

    /// A write: on the primary.
    async fn snapshot_mtls_adoption(&self) -> Result<u64> {
        self.primary.snapshot_mtls_adoption().await
    }

    async fn inventory(&self) -> Result<Inventory> {
        read!(self, store => store.inventory())
    }

    /// The primary's: liveness is judged from heartbeats seconds old, which a lagging
    /// replica would show as probers gone silent.
    async fn prober_status(&self) -> Result<crate::ProberStatus> {
        self.primary.prober_status().await
    }

    async fn search_certificates(
        &self,
        search: &CertificateSearch,
    ) -> Result<Vec<CertificateRecord>> {
        read!(self, store => store.search_certificates(search))
    }

    async fn expiring_leaves(
        &self,
        within: Span,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ExpiringCertificate>> {
        read!(self, store => store.expiring_leaves(within, after, limit))
    }

    async fn search_endpoints(&self, search: &EndpointSearch) -> Result<Vec<EndpointRecord>> {
        read!(self, store => store.search_endpoints(search))
    }

    async fn search_sockets(&self, search: &EndpointSearch) -> Result<Vec<SocketRecord>> {
        read!(self, store => store.search_sockets(search))
    }

    async fn endpoint(&self, id: EndpointId) -> Result<EndpointDetail> {
        read!(self, store => store.endpoint(id))
    }

    async fn certificate_history(&self, sha256: &str) -> Result<CertificateHistory> {
        read!(self, store => store.certificate_history(sha256))
    }

    async fn notification_page(
        &self,
        filter: &NotificationFilter,
    ) -> Result<Vec<NotificationRecord>> {
        read!(self, store => store.notification_page(filter))
    }

    async fn fleet_overview(&self) -> Result<FleetOverview> {
        read!(self, store => store.fleet_overview())
    }

    /// A write: on the primary.
    async fn save_overview(&self, overview: &FleetOverview) -> Result<()> {
        self.primary.save_overview(overview).await
    }

    /// The primary's: what was just saved there, not yet replayed on a lagging replica.
    async fn saved_overview(&self) -> Result<Option<FleetOverview>> {
        self.primary.saved_overview().await
    }

    async fn export_page(&self, page: &ExportPage) -> Result<ExportRows> {
        read!(self, store => store.export_page(page))
    }
}
