//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Every label has a bounded set of values: requests are counted by route template
//! (`MatchedPath`, never the raw path; `unmatched` when no route matched), method (the
//! nine of RFC 9110 and PATCH; any other spelling counts as `other`) and status; fleet gauges come from the
//! cached overview (fixed finding, status and bucket names); per-certificate expiry series
//! exist only for leaves in use that expire within a window, and at most a few hundred.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use certfleet_store::{ExpiryBuckets, FleetOverview};

use crate::state::Web;
use crate::ApiError;

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    /// Observations at or below each bound of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
}

/// Request counts and durations by (method, route template, status).
#[derive(Default)]
pub(crate) struct RequestMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl RequestMetrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = series
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.count += 1;
        entry.sum += seconds;
        for (bound, count) in BUCKETS.iter().zip(entry.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        header(
            out,
            "certfleet_http_requests_total",
            "counter",
            "HTTP requests by route template and status.",
        );
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "certfleet_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        let name = "certfleet_http_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "HTTP request durations by route template.",
        );
        for ((method, route, status), s) in series.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, count) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
        }
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
    web.requests
        .observe(method, &route, response.status().as_u16(), seconds);
    let status = response.status().as_u16();
    tracing::debug!(%method, %route, status, seconds, "request");
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
    let store = &web.app.store;
    let overview = web.overview.overview(store).await?;
    let expiring = web
        .overview
        .expiring(
            store,
            web.options.metrics_expiry_window,
            web.options.metrics_expiry_series,
        )
        .await?;
    let mut out = String::with_capacity(16 * 1024);
    fleet(&mut out, &overview);
    let name = "certfleet_certificate_expiry_timestamp_seconds";
    header(
        &mut out,
        name,
        "gauge",
        "End of validity of each leaf in use that expires within the configured window.",
    );
    for certificate in expiring.iter() {
        let record = &certificate.certificate;
        let _ = writeln!(
            out,
            "{name}{{sha256=\"{}\",serial=\"{}\",subject=\"{}\"}} {}",
            record.sha256,
            escape(&record.serial),
            escape(&record.subject),
            record.not_after.unix_timestamp()
        );
    }
    web.requests.render(&mut out);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

fn fleet(out: &mut String, overview: &FleetOverview) {
    let age = (time::OffsetDateTime::now_utc() - overview.computed_at).as_seconds_f64();
    gauge(
        out,
        "certfleet_overview_age_seconds",
        "How old the fleet gauges below are.",
        &[("", age.max(0.0))],
    );
    let plain = |value: u64| [("", value as f64)];
    gauge(
        out,
        "certfleet_hosts",
        "Hosts ever reported.",
        &plain(overview.hosts),
    );
    gauge(
        out,
        "certfleet_certificates_known",
        "Distinct certificates ever seen.",
        &plain(overview.certificates),
    );
    gauge(
        out,
        "certfleet_endpoints_active",
        "Endpoints not retired: each socket once, plus once per name it is probed under.",
        &plain(overview.active_endpoints),
    );
    gauge(
        out,
        "certfleet_sockets_active",
        "Listening sockets (address, port) with an active endpoint; the mTLS, finding and expiry gauges count these.",
        &plain(overview.sockets),
    );
    gauge(
        out,
        "certfleet_notifications_failed",
        "Pending notifications with a failed delivery attempt.",
        &plain(overview.failed_notifications),
    );
    gauge(
        out,
        "certfleet_endpoint_conflicts",
        "Claims on an endpoint by a host other than its live one, kept and not applied.",
        &plain(overview.endpoint_conflicts),
    );
    let buckets = |b: &ExpiryBuckets, with_later: bool| {
        let mut values = vec![
            ("days_left=\"expired\"".to_owned(), b.expired),
            ("days_left=\"0-7\"".to_owned(), b.within_7_days),
            ("days_left=\"7-30\"".to_owned(), b.within_30_days),
            ("days_left=\"30-90\"".to_owned(), b.within_90_days),
        ];
        if with_later {
            values.push(("days_left=\"90+\"".to_owned(), b.later));
        }
        values
    };
    labelled(
        out,
        "certfleet_certificates_in_use",
        "Distinct leaf certificates served now, by days left.",
        &buckets(&overview.certificates_by_days_left, false),
    );
    labelled(
        out,
        "certfleet_endpoints_by_days_left",
        "Active endpoints by the days left of their leaf.",
        &buckets(&overview.endpoints_by_days_left, true),
    );
    let mtls = [
        ("state=\"required\"".to_owned(), overview.mtls.required),
        ("state=\"optional\"".to_owned(), overview.mtls.optional),
        ("state=\"none\"".to_owned(), overview.mtls.none),
    ];
    labelled(
        out,
        "certfleet_endpoints_mtls",
        "Probed active endpoints by client-certificate policy.",
        &mtls,
    );
    let findings: Vec<_> = overview
        .findings
        .iter()
        .map(|f| (format!("finding=\"{}\"", f.name), f.count))
        .collect();
    labelled(
        out,
        "certfleet_endpoints_with_finding",
        "Active endpoints whose current observation has a finding.",
        &findings,
    );
    let status: Vec<_> = overview
        .probe_status
        .iter()
        .map(|s| (format!("status=\"{}\"", s.name), s.count))
        .collect();
    labelled(
        out,
        "certfleet_endpoints_probe_status",
        "Active endpoints by the outcome of their last probe.",
        &status,
    );
    let queue = &overview.queue;
    let queue = [
        ("state=\"due\"".to_owned(), queue.due),
        ("state=\"overdue\"".to_owned(), queue.overdue),
        ("state=\"leased\"".to_owned(), queue.leased),
        ("state=\"failing\"".to_owned(), queue.failing),
    ];
    labelled(
        out,
        "certfleet_probe_queue",
        "Active endpoints due (over an hour: overdue), leased, or failing.",
        &queue,
    );
    let rate = overview.queue.probed_last_5m as f64 / 300.0;
    gauge(
        out,
        "certfleet_probe_rate",
        "Endpoints probed per second by all probers, over the last five minutes.",
        &[("", rate)],
    );
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(&str, f64)]) {
    header(out, name, "gauge", help);
    for (labels, value) in values {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn labelled(out: &mut String, name: &str, help: &str, values: &[(String, u64)]) {
    header(out, name, "gauge", help);
    for (labels, value) in values {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A label value: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
