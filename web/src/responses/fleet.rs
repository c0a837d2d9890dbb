//! Fleet-wide figures: the overview, the mTLS summary, and what an agent's report added.

use certfleet_store as store;
use serde::Serialize;
use time::{Date, OffsetDateTime};

use super::rfc3339;

/// `GET /overview`: the figures of the dashboard, computed in one pass and cached.
#[derive(Debug, Clone, Serialize)]
pub struct FleetOverview {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub computed_at: OffsetDateTime,
    pub hosts: u64,
    pub certificates: u64,
    pub active_endpoints: u64,
    /// Listening sockets (an endpoint probed under several names counts once).
    pub sockets: u64,
    pub observed_endpoints: u64,
    pub certificates_by_days_left: ExpiryBuckets,
    pub endpoints_by_days_left: ExpiryBuckets,
    pub mtls: MtlsCounts,
    pub mtls_by_app: Vec<MtlsGroup>,
    pub mtls_by_env: Vec<MtlsGroup>,
    pub mtls_trend: Vec<MtlsDay>,
    pub findings: Vec<NamedCount>,
    pub probe_status: Vec<NamedCount>,
    pub queue: QueueDepth,
    pub failed_notifications: u64,
    pub endpoint_conflicts: u64,
    pub discovery: DiscoveryLatency,
    /// The probe queue of each zone, with the live probers serving it.
    pub zones: Vec<super::ZoneQueue>,
}

impl From<&store::FleetOverview> for FleetOverview {
    fn from(overview: &store::FleetOverview) -> Self {
        FleetOverview {
            computed_at: overview.computed_at,
            hosts: overview.hosts,
            certificates: overview.certificates,
            active_endpoints: overview.active_endpoints,
            sockets: overview.sockets,
            observed_endpoints: overview.observed_endpoints,
            certificates_by_days_left: overview.certificates_by_days_left.into(),
            endpoints_by_days_left: overview.endpoints_by_days_left.into(),
            mtls: overview.mtls.into(),
            mtls_by_app: groups(&overview.mtls_by_app),
            mtls_by_env: groups(&overview.mtls_by_env),
            mtls_trend: trend(&overview.mtls_trend),
            findings: named(&overview.findings),
            probe_status: named(&overview.probe_status),
            queue: overview.queue.into(),
            failed_notifications: overview.failed_notifications,
            endpoint_conflicts: overview.endpoint_conflicts,
            discovery: (&overview.discovery).into(),
            zones: overview.zones.iter().map(Into::into).collect(),
        }
    }
}

/// How many are expired or end within 7, 30, 90 days, or later.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExpiryBuckets {
    pub expired: u64,
    pub within_7_days: u64,
    pub within_30_days: u64,
    pub within_90_days: u64,
    pub later: u64,
}

impl From<store::ExpiryBuckets> for ExpiryBuckets {
    fn from(buckets: store::ExpiryBuckets) -> Self {
        ExpiryBuckets {
            expired: buckets.expired,
            within_7_days: buckets.within_7_days,
            within_30_days: buckets.within_30_days,
            within_90_days: buckets.within_90_days,
            later: buckets.later,
        }
    }
}

/// Sockets by client-certificate policy.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MtlsCounts {
    pub required: u64,
    pub optional: u64,
    pub none: u64,
}

impl From<store::MtlsCounts> for MtlsCounts {
    fn from(counts: store::MtlsCounts) -> Self {
        MtlsCounts {
            required: counts.required,
            optional: counts.optional,
            none: counts.none,
        }
    }
}

/// The counts of one app or env (`key` null: untagged).
#[derive(Debug, Clone, Serialize)]
pub struct MtlsGroup {
    pub key: Option<String>,
    #[serde(flatten)]
    pub counts: MtlsCounts,
}

/// The counts of one day of the adoption trend.
#[derive(Debug, Clone, Serialize)]
pub struct MtlsDay {
    pub day: Date,
    #[serde(flatten)]
    pub counts: MtlsCounts,
}

fn groups(groups: &[store::MtlsGroup]) -> Vec<MtlsGroup> {
    let group = |group: &store::MtlsGroup| MtlsGroup {
        key: group.key.clone(),
        counts: group.counts.into(),
    };
    groups.iter().map(group).collect()
}

fn trend(days: &[store::MtlsDay]) -> Vec<MtlsDay> {
    let day = |day: &store::MtlsDay| MtlsDay {
        day: day.day,
        counts: day.counts.into(),
    };
    days.iter().map(day).collect()
}

/// `GET /mtls/summary?by=app|env`.
#[derive(Debug, Clone, Serialize)]
pub struct MtlsSummary {
    /// `app` or `env`.
    pub by: &'static str,
    pub groups: Vec<MtlsGroup>,
    pub trend: Vec<MtlsDay>,
}

impl MtlsSummary {
    /// The summary by `by`, from the overview's figures.
    pub fn new(by: store::MtlsGrouping, overview: &store::FleetOverview) -> Self {
        let (by, by_group) = match by {
            store::MtlsGrouping::App => ("app", &overview.mtls_by_app),
            store::MtlsGrouping::Env => ("env", &overview.mtls_by_env),
        };
        MtlsSummary {
            by,
            groups: groups(by_group),
            trend: trend(&overview.mtls_trend),
        }
    }
}

/// A count by name (findings, probe statuses).
#[derive(Debug, Clone, Serialize)]
pub struct NamedCount {
    pub name: String,
    pub count: u64,
}

fn named(counts: &[store::NamedCount]) -> Vec<NamedCount> {
    let count = |count: &store::NamedCount| NamedCount {
        name: count.name.clone(),
        count: count.count,
    };
    counts.iter().map(count).collect()
}

/// The probe queue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueueDepth {
    pub due: u64,
    pub overdue: u64,
    pub leased: u64,
    pub failing: u64,
    pub probed_last_5m: u64,
}

impl From<store::QueueDepth> for QueueDepth {
    fn from(queue: store::QueueDepth) -> Self {
        QueueDepth {
            due: queue.due,
            overdue: queue.overdue,
            leased: queue.leased,
            failing: queue.failing,
            probed_last_5m: queue.probed_last_5m,
        }
    }
}

/// How soon rotations were seen: over all time and over the last 7 days.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryLatency {
    pub all: LatencyHistogram,
    pub last_7_days: LatencyHistogram,
}

impl From<&store::DiscoveryLatency> for DiscoveryLatency {
    fn from(latency: &store::DiscoveryLatency) -> Self {
        DiscoveryLatency {
            all: (&latency.all).into(),
            last_7_days: (&latency.last_7_days).into(),
        }
    }
}

/// A cumulative histogram: `within` holds (bound in seconds, rotations seen within it).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyHistogram {
    pub count: u64,
    pub sum_seconds: f64,
    pub within: Vec<(u64, u64)>,
}

impl From<&store::LatencyHistogram> for LatencyHistogram {
    fn from(histogram: &store::LatencyHistogram) -> Self {
        LatencyHistogram {
            count: histogram.count,
            sum_seconds: histogram.sum_seconds,
            within: histogram.within.clone(),
        }
    }
}

/// `POST /reports`: what one report added.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IngestCounts {
    pub sockets: u64,
    pub endpoints: u64,
    pub skipped: u64,
    pub conflicts: u64,
    /// The agent's own probe results recorded (agent-side probing).
    pub probes: u64,
    /// The agent's own probe results refused, one by one (the rest of the report is kept).
    pub probes_refused: u64,
}

impl From<store::IngestCounts> for IngestCounts {
    fn from(counts: store::IngestCounts) -> Self {
        IngestCounts {
            sockets: counts.sockets,
            endpoints: counts.endpoints,
            skipped: counts.skipped,
            conflicts: counts.conflicts,
            probes: counts.probes,
            probes_refused: counts.probes_refused,
        }
    }
}
