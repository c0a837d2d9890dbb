//! certfleet's store: the [`Store`] API, in domain words, and its PostgreSQL and SQLite
//! implementations. This is the only crate that writes SQL.
//!
//! ```no_run
//! # async fn example() -> certfleet_store::Result<()> {
//! let store = certfleet_store::connect("sqlite://certfleet.db", Default::default()).await?;
//! store.migrate().await?;
//! store.ping().await?;
//! # Ok(()) }
//! ```
//!
//! The backend is chosen from the URL scheme (`postgres://`, `postgresql://`, `sqlite:`).
//! Both run the migrations embedded from `migrations/postgres` and `migrations/sqlite`.
//! Times come from a [`Clock`], so that tests can move time instead of sleeping.

mod backend;
mod browse;
mod browse_sql;
mod clock;
mod db;
mod error;
mod events;
mod fence;
#[doc(hidden)]
pub mod fuzzing;
mod isolate;
mod notify;
mod notify_records;
mod osquery;
mod overview_sql;
mod pg;
mod plan;
mod probers;
mod read_model;
mod records;
mod replica;
mod replica_lag;
mod retention;
mod roles;
mod rotation;
mod rows;
mod sni;
// The domain rules the store indexes and schedules by live in the model crate.
use certfleet_model::{names, schedule};
mod sqlite;
mod store;
mod token;
mod write;
mod zones;

use std::fmt::Debug;
use std::sync::Arc;

use time::Duration;

pub use browse::{
    normalize_fingerprint, serial_candidates, CertificateHistory, CertificateLookup,
    CertificateSearch, EndpointClaim, EndpointDetail, EndpointSearch, ExpiryBuckets, ExportCursor,
    ExportPage, ExportRows, FleetOverview, MtlsState, NamedCount, NotificationFilter, QueueDepth,
    SocketRecord, Succession, FINDINGS, NAMES_PER_SOCKET,
};
pub use certfleet_model::names::{hostname_candidates, normalize_serial};
pub use certfleet_model::names::{usable_sni, NAMES_PER_ENDPOINT};
pub use certfleet_model::schedule::{ProbeSchedule, Validity};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use events::{rfc3339, EventKind, EventStore, OutboxEvent};
pub use notify::NotificationStore;
pub use notify_records::{
    Mute, NotificationCandidate, NotificationClaim, NotificationRecord, NotificationStatus,
    Resolution,
};
pub use pg::PostgresStore;
pub use plan::MAX_CLOCK_SKEW;
pub use probers::{ProberBeat, ProberRecord, ProberStatus, ZoneQueue};
pub use records::{
    AgentName, CertificateDetail, CertificateRecord, Credential, EndpointFilter, EndpointId,
    EndpointRecord, ExpiringCertificate, IngestCounts, Inventory, Lease, LeasedEndpoint,
    MtlsCounts, MtlsDay, MtlsGroup, MtlsGrouping, MtlsSummary, NameSource, ObservationRecord,
    ProbeRequest, Recorded, Seen, ServedAt, StaticEndpoint, TokenKind, TokenRecord, WorkloadTags,
};
pub use replica::{
    check_read_url, connect_with_replica, ReplicaOptions, ReplicaStatus, Replicated,
};
pub use retention::{
    PruneCounts, RetentionPolicy, RetentionStore, DEFAULT_BATCH as DEFAULT_PRUNE_BATCH,
    MAX_BATCH as MAX_PRUNE_BATCH,
};
pub use roles::{IngestStore, ProbeQueue, ReadModel};
pub use rotation::{DiscoveryLatency, LatencyHistogram, LATENCY_BUCKETS};
pub use sqlite::SqliteStore;
pub use store::SqlStore;
pub use zones::{check_zone_name, check_zones, Zone, DEFAULT_ZONE, MAX_ZONE_NAME};

/// Everything certfleet keeps, behind one API with a PostgreSQL and a SQLite
/// implementation. Share it as `Arc<dyn Store>`. It is the six roles together, each its
/// own trait so that a reader sees which part of the store a caller needs:
/// [`IngestStore`] (what agents and operators put in), [`ProbeQueue`] (the probers'
/// leases and results), [`ReadModel`] (what the web API, the pages and the scheduler read),
/// [`NotificationStore`] (the notification outbox), [`EventStore`] (the change-event
/// outbox) and [`RetentionStore`] (pruning what is old). Every type that is all six is a
/// `Store`.
pub trait Store:
    IngestStore + ProbeQueue + ReadModel + NotificationStore + EventStore + RetentionStore + Debug
{
}

impl<T> Store for T where
    T: IngestStore
        + ProbeQueue
        + ReadModel
        + NotificationStore
        + EventStore
        + RetentionStore
        + Debug
{
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before answering `Unavailable`.
    pub acquire_timeout: std::time::Duration,
    /// When endpoints are probed next.
    pub schedule: ProbeSchedule,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Whether recording probe results creates the endpoints for the names they reveal
    /// (see [`ProbeQueue::record_probe_results`]); off, only the endpoints reported or
    /// configured are probed.
    pub present_names: bool,
    /// How long an endpoint stays its reporting host's: another host's report of the same
    /// address and port within this time after the last sighting is kept as a conflict
    /// (see [`EndpointDetail::conflicts`]), not applied. Two agent report intervals.
    pub claim_window: Duration,
    /// Most active endpoints one host may stand for (its reports are refused beyond).
    pub max_endpoints_per_host: u64,
    /// How durable a SQLite commit is (PostgreSQL ignores it).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Whether changes write change events to the `events` outbox (docs/events.md): on
    /// when `[events]` is configured, so that no outbox grows without a publisher.
    pub events: bool,
    /// The network zones (`[[zones]]`): an endpoint's zone is decided from them when it
    /// is written (see [`Zone`]).
    pub zones: Vec<Zone>,
}

/// SQLite's `PRAGMA synchronous` for the store's connections (in WAL mode):
/// `database.sqlite_synchronous`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Each commit is flushed to disk (the WAL fsynced) before it returns: what was
    /// answered (a report's 202, a probe recorded, a notification marked sent) survives
    /// a power loss or an operating system crash.
    #[default]
    Full,
    /// The WAL is flushed only at checkpoints: commits stay atomic and the database is
    /// never corrupted, and a crash of the process loses nothing, but a power loss or an
    /// operating system crash may lose the last commits before it.
    Normal,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(5),
            schedule: ProbeSchedule::default(),
            clock: Arc::new(SystemClock),
            present_names: true,
            claim_window: plan::REPORT_WINDOW,
            max_endpoints_per_host: 50_000,
            sqlite_synchronous: SqliteSynchronous::default(),
            events: false,
            zones: Vec::new(),
        }
    }
}

/// Opens the store a URL names: `postgres://` / `postgresql://` or `sqlite:`. Does not
/// migrate; call [`ReadModel::migrate`].
pub async fn connect(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>> {
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(PostgresStore::connect(url, options).await?))
        }
        Some("sqlite") => Ok(Arc::new(SqliteStore::connect(url, options).await?)),
        _ => Err(Error::invalid(
            "database.url",
            "must start with postgres://, postgresql:// or sqlite:",
        )),
    }
}
