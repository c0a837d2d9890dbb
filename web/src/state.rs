//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use certfleet_model::ReportLimits;
use certfleet_store::{ReadModel, Replicated, Store};

use crate::metrics::RequestMetrics;
use crate::overview::OverviewCache;

/// Shared state of the router, as the binary builds it.
#[derive(Clone)]
pub struct AppState {
    /// The primary: every write, authentication, and reads that must see a write just made.
    pub store: Arc<dyn Store>,
    /// Where the API's and pages' reads go: the replica's [`Replicated`] when
    /// `database.read_url` is set, else the same store as `store`.
    pub reads: Arc<dyn ReadModel>,
    /// The read replica, when there is one: its state on `/readyz` and `/metrics`.
    pub replica: Option<Arc<Replicated>>,
    pub ingest: IngestLimits,
    /// When set, reads need this bearer token (`server.read_token`).
    pub read_token: Option<String>,
    /// `osquery.enroll_secret`; `None` or empty: the osquery endpoints answer 404.
    pub osquery_enroll_secret: Option<String>,
    /// `server.agent_enroll_secret`; `None` or empty: agent enrollment answers 404.
    pub agent_enroll_secret: Option<String>,
    /// The process's roles, for `/readyz` (empty when nothing supervises them).
    pub roles: crate::RoleHealth,
    /// Probe now: its rate limit, what it promises, the key of the signed links.
    pub probe_now: ProbeNow,
}

/// How operators' "probe now" requests are answered (`POST /api/v1/endpoints/{id}/probe`,
/// the endpoint page's button, the signed links in digests).
#[derive(Debug, Clone)]
pub struct ProbeNow {
    /// At most one request per endpoint within this window (`server.probe_now_window`);
    /// another is answered `429` with `Retry-After`.
    pub window: Duration,
    /// The answer's `expected_by` is the request time plus this: a prober's idle poll,
    /// one probe and the recording (the binary derives it from the prober's settings).
    pub expected_within: Duration,
    /// The key of the signed "renewed? check again" links (`server.link_secret`);
    /// `None`: the link routes answer `404`.
    pub link_key: Option<certfleet_model::probe_link::LinkKey>,
}

impl Default for ProbeNow {
    fn default() -> Self {
        ProbeNow {
            window: Duration::from_secs(60),
            expected_within: Duration::from_secs(15),
            link_key: None,
        }
    }
}

/// Limits of the ingest routes (`POST /api/v1/reports`, the osquery enroll and logger).
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Ingest requests handled at once, all ingest routes together (`server.ingest_concurrency`);
    /// past it a request is answered `503` with `Retry-After`, before its body is read.
    pub max_in_flight: usize,
    /// Bytes of the request body as sent (compressed or not).
    pub max_body: usize,
    /// Bytes of the body after gzip decompression (a gzip bomb stops here).
    pub max_decompressed: usize,
    /// Per-field limits of the report itself (sockets per report, string sizes...).
    pub report: ReportLimits,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_in_flight: 16,
            max_body: 8 * 1024 * 1024,
            max_decompressed: 16 * 1024 * 1024,
            report: ReportLimits::default(),
        }
    }
}

/// How the web layer trades freshness for cost.
#[derive(Debug, Clone, Copy)]
pub struct WebOptions {
    /// How long the fleet overview (dashboard, mTLS summary, /metrics gauges) is served
    /// from memory before it is computed again. Zero: every request computes it.
    pub overview_ttl: Duration,
    /// `/metrics` has one expiry series per leaf certificate in use that expires within
    /// this window (expired ones included).
    pub metrics_expiry_window: time::Duration,
    /// ... and at most this many such series (the soonest), to bound cardinality.
    pub metrics_expiry_series: u32,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            overview_ttl: Duration::from_secs(15),
            metrics_expiry_window: time::Duration::days(14),
            metrics_expiry_series: 500,
        }
    }
}

/// The router's state: what the binary gave, and what the web layer keeps itself.
#[derive(Clone)]
pub(crate) struct Web {
    pub app: AppState,
    pub options: WebOptions,
    pub overview: Arc<OverviewCache>,
    pub requests: Arc<RequestMetrics>,
}

impl Web {
    pub fn new(app: AppState, options: WebOptions) -> Self {
        Web {
            overview: Arc::new(OverviewCache::new(options.overview_ttl)),
            requests: Arc::new(RequestMetrics::default()),
            app,
            options,
        }
    }
}

impl FromRef<Web> for AppState {
    fn from_ref(web: &Web) -> AppState {
        web.app.clone()
    }
}
