//! `/metrics` in the OpenMetrics text format (which Prometheus reads), written by
//! `prometheus-client`: names, types, escaping and the exposition are the library's.
//!
//! Every label has a bounded set of values: requests are counted by route template
//! (`MatchedPath`, never the raw path; `unmatched` when no route matched), method (the
//! nine of RFC 9110 and PATCH; any other spelling counts as `other`) and status; fleet
//! gauges come from the cached overview (fixed finding, status and bucket names);
//! per-certificate expiry series exist only for leaves in use that expire within a window,
//! and at most a few hundred.
//!
//! The request metrics live as long as the service; the fleet gauges are made afresh from
//! the overview at each scrape, in a registry that also holds (shared handles to) the
//! request metrics.
//!
//! prometheus-client writes no counter here: in OpenMetrics a counter's `# TYPE` and
//! `# HELP` name the family without `_total`, which `promtool check metrics` (it reads
//! the older Prometheus text format) reports as a series without help. Requests are
//! counted by the duration histogram's `_count`, with the same labels. The one counter,
//! `certfleet_retention_pruned_total` (rows the retention pruned, kept in the database),
//! is written by hand in the form both read: its family named with `_total`.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use certfleet_store::{ExpiryBuckets, FleetOverview, LatencyHistogram, PruneCounts, ZoneQueue};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::state::Web;
use crate::ApiError;

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

/// What `/metrics` answers with.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The labels of the request metrics, in this order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

fn request_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Request durations (and so counts) by (method, route template, status).
pub(crate) struct RequestMetrics {
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            durations: Family::new_with_constructor(request_histogram),
        }
    }
}

impl RequestMetrics {
    fn observe(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        let labels = RequestLabels {
            method,
            route,
            status,
        };
        self.durations.get_or_create(&labels).observe(seconds);
    }

    /// Adds the request metrics (shared, not copied) to a scrape's registry.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "certfleet_http_request_duration_seconds",
            "HTTP request durations (and, as _count, requests) by method, route template and status",
            self.durations.clone(),
        );
    }
}

/// Middleware: counts every request under its route template (`unmatched` for 404s).
pub(crate) async fn track(State(web): State<Web>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    tracing::debug!(%method, %route, status, seconds, "request");
    web.requests.observe(method, route, status, seconds);
    response
}

/// The `method` label: a standard method by its name, anything else `other` (a client
/// may send any token as a method, and each would be a new series).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

/// `GET /metrics`.
pub(crate) async fn get(State(web): State<Web>) -> Result<Response, ApiError> {
    let store = &web.app.reads;
    let overview = web.overview.overview(store).await?;
    let expiring = web
        .overview
        .expiring(
            store,
            web.options.metrics_expiry_window,
            web.options.metrics_expiry_series,
        )
        .await?;
    let mut registry = Registry::default();
    fleet(&mut registry, &overview);
    let expiry = Family::<ExpiryLabels, Gauge>::default();
    for certificate in expiring.iter() {
        let record = &certificate.certificate;
        let labels = ExpiryLabels {
            sha256: record.sha256.clone(),
            serial: record.serial.clone(),
            subject: record.subject.clone(),
        };
        expiry
            .get_or_create(&labels)
            .set(record.not_after.unix_timestamp());
    }
    registry.register(
        "certfleet_certificate_expiry_timestamp_seconds",
        "End of validity of each leaf in use that expires within the configured window",
        expiry,
    );
    if let Some(replica) = &web.app.replica {
        replica_gauges(&mut registry, &replica.status());
    }
    web.requests.register(&mut registry);
    let mut out = String::with_capacity(16 * 1024);
    encode(&mut out, &registry)
        .map_err(|_| ApiError::Internal("cannot encode the metrics".into()))?;
    // Four rows by key; when the database does not answer, the rest is still served.
    match web.app.store.pruned_totals().await {
        Ok(totals) => retention_pruned(&mut out, &totals),
        Err(error) => tracing::warn!(%error, "cannot read the retention totals"),
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response())
}

/// `certfleet_retention_pruned_total{kind}`, before the exposition's `# EOF`.
fn retention_pruned(out: &mut String, totals: &PruneCounts) {
    use std::fmt::Write;
    let end = out.rfind("# EOF").unwrap_or(out.len());
    let mut family = String::from(
        "# HELP certfleet_retention_pruned_total Rows deleted by retention ([retention]), by kind, since the database was created\n\
         # TYPE certfleet_retention_pruned_total counter\n",
    );
    for (kind, pruned) in totals.by_kind() {
        let _ = writeln!(
            family,
            "certfleet_retention_pruned_total{{kind=\"{kind}\"}} {pruned}"
        );
    }
    out.insert_str(end, &family);
}

/// The read replica: whether it answers, how far behind it is (absent until it has caught
/// up once), and the reads the primary answered instead. The count is a gauge, as every
/// count here is (see the module comment); it only grows while the process runs.
fn replica_gauges(registry: &mut Registry, status: &certfleet_store::ReplicaStatus) {
    count(
        registry,
        "certfleet_database_replica_up",
        "1 when the read replica answered its last check",
        u64::from(status.up),
    );
    if let Some(lag) = status.lag {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(lag.as_secs_f64());
        registry.register(
            "certfleet_database_replica_lag_seconds",
            "How far the read replica is behind the primary (reads go to the primary beyond database.read_max_lag)",
            gauge,
        );
    }
    count(
        registry,
        "certfleet_database_replica_fallback_reads",
        "Reads the primary answered because the read replica was down or behind, since the process started",
        status.fallback_reads,
    );
}

/// One series per leaf in use that expires soon.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiryLabels {
    sha256: String,
    serial: String,
    subject: String,
}

fn fleet(registry: &mut Registry, overview: &FleetOverview) {
    let age = (time::OffsetDateTime::now_utc() - overview.computed_at).as_seconds_f64();
    let overview_age = Gauge::<f64, AtomicU64>::default();
    overview_age.set(age.max(0.0));
    registry.register(
        "certfleet_overview_age_seconds",
        "How old the fleet gauges are",
        overview_age,
    );
    count(
        registry,
        "certfleet_hosts",
        "Hosts ever reported",
        overview.hosts,
    );
    count(
        registry,
        "certfleet_certificates_known",
        "Distinct certificates ever seen",
        overview.certificates,
    );
    count(
        registry,
        "certfleet_endpoints_active",
        "Endpoints not retired: each socket once, plus once per name it is probed under",
        overview.active_endpoints,
    );
    count(
        registry,
        "certfleet_sockets_active",
        "Listening sockets (address, port) with an active endpoint; the mTLS, finding and expiry gauges count these",
        overview.sockets,
    );
    count(
        registry,
        "certfleet_notifications_failed",
        "Pending notifications with a failed delivery attempt",
        overview.failed_notifications,
    );
    count(
        registry,
        "certfleet_endpoint_conflicts",
        "Claims on an endpoint by a host other than its live one, kept and not applied",
        overview.endpoint_conflicts,
    );
    // Expiry buckets are labels, not a unit in the name: promtool's base-unit rule
    // rejects `_days` in a metric name. The same `days_left` values on both gauges, so
    // one alert vocabulary serves certificates and endpoints.
    let buckets = |b: &ExpiryBuckets, with_later: bool| {
        let mut values = vec![
            ("expired", b.expired),
            ("0-7", b.within_7_days),
            ("7-30", b.within_30_days),
            ("30-90", b.within_90_days),
        ];
        if with_later {
            values.push(("90+", b.later));
        }
        values
    };
    counts(
        registry,
        "certfleet_certificates_in_use",
        "Distinct leaf certificates served now, by days left",
        "days_left",
        buckets(&overview.certificates_by_days_left, false),
    );
    counts(
        registry,
        "certfleet_endpoints_by_expiry",
        "Active endpoints by the days left of their leaf",
        "days_left",
        buckets(&overview.endpoints_by_days_left, true),
    );
    let mtls = &overview.mtls;
    counts(
        registry,
        "certfleet_endpoints_mtls",
        "Probed active endpoints by client-certificate policy",
        "state",
        [
            ("required", mtls.required),
            ("optional", mtls.optional),
            ("none", mtls.none),
        ],
    );
    counts(
        registry,
        "certfleet_endpoints_with_finding",
        "Active endpoints whose current observation has a finding",
        "finding",
        overview.findings.iter().map(|f| (f.name.as_str(), f.count)),
    );
    counts(
        registry,
        "certfleet_endpoints_probe_status",
        "Active endpoints by the outcome of their last probe",
        "status",
        overview
            .probe_status
            .iter()
            .map(|s| (s.name.as_str(), s.count)),
    );
    let queue = &overview.queue;
    counts(
        registry,
        "certfleet_probe_queue",
        "Active endpoints due (over an hour: overdue), leased, or failing",
        "state",
        [
            ("due", queue.due),
            ("overdue", queue.overdue),
            ("leased", queue.leased),
            ("failing", queue.failing),
        ],
    );
    registry.register(
        "certfleet_rotation_discovery_latency_seconds",
        "Certificate rotations seen, by the time between the last probe that saw the old leaf and the first that saw the new one",
        RecordedHistogram(overview.discovery.all.clone()),
    );
    zones(registry, &overview.zones);
    let rate = Gauge::<f64, AtomicU64>::default();
    rate.set(queue.probed_last_5m as f64 / 300.0);
    registry.register(
        "certfleet_probe_rate",
        "Endpoints probed per second by all probers, over the last five minutes",
        rate,
    );
}

/// Most zones with their own series: zone names can come from agents' tags, so their
/// number is bounded here; the zones with the most due endpoints are kept.
const ZONE_SERIES: usize = 64;

/// The queue and the live probers of each zone (`CertfleetZoneWithoutProber` in
/// docs/alerts.yml alerts on due endpoints in a zone with no live prober).
fn zones(registry: &mut Registry, zones: &[ZoneQueue]) {
    let mut kept: Vec<&ZoneQueue> = zones.iter().collect();
    kept.sort_by(|a, b| b.due.cmp(&a.due).then_with(|| a.zone.cmp(&b.zone)));
    kept.truncate(ZONE_SERIES);
    counts(
        registry,
        "certfleet_probe_queue_due",
        "Active endpoints due now in each zone",
        "zone",
        kept.iter().map(|queue| (queue.zone.as_str(), queue.due)),
    );
    counts(
        registry,
        "certfleet_probers_live",
        "Live probers (announced within three heartbeats) serving each zone",
        "zone",
        kept.iter()
            .map(|queue| (queue.zone.as_str(), queue.live_probers)),
    );
}

/// A histogram whose counts the store keeps (rotations are recorded by the probers,
/// wherever they run): written as prometheus-client writes its own.
#[derive(Debug)]
struct RecordedHistogram(LatencyHistogram);

impl EncodeMetric for RecordedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder adds the buckets up itself: hand it each bucket's own count.
        let mut buckets = Vec::with_capacity(self.0.within.len() + 1);
        let mut below = 0;
        for (bound, within) in &self.0.within {
            buckets.push((*bound as f64, within.saturating_sub(below)));
            below = *within;
        }
        buckets.push((f64::INFINITY, self.0.count.saturating_sub(below)));
        encoder.encode_histogram::<NoLabelSet>(self.0.sum_seconds, self.0.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A gauge of one count.
fn count(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let gauge = Gauge::<i64>::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, gauge);
}

/// A gauge of counts by the values of one label.
fn counts<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let family = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (value, count) in values {
        family
            .get_or_create(&vec![(label, value.to_owned())])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    registry.register(name, help, family);
}
