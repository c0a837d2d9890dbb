//! `/metrics`: OpenMetrics text with fleet gauges, bounded per-certificate expiry series,
//! and request metrics labelled by route template.

use crate::support::http::send;
use crate::support::TestApp;

crate::on_both_backends!(
    metrics_expose_fleet_gauges_expiry_series_and_route_templates,
    request_labels_never_take_request_data,
    rows_pruned_by_retention_are_counted_by_kind,
);

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_expose_fleet_gauges_expiry_series_and_route_templates(app: TestApp) {
    let fleet = &app.fleet;
    app.get(&format!("/api/v1/certificates/{}", fleet.api.info.sha256))
        .await;
    app.get(&format!("/api/v1/certificates/{}", fleet.shop.info.sha256))
        .await;
    app.get("/no/such/page").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(response.text().ends_with("# EOF\n"));
    let metrics = response.text();
    let expect = [
        ("certfleet_endpoints_active", 9.0),
        ("certfleet_endpoints_mtls{state=\"required\"}", 1.0),
        ("certfleet_endpoints_mtls{state=\"none\"}", 2.0),
        ("certfleet_certificates_in_use{days_left=\"expired\"}", 1.0),
        ("certfleet_certificates_in_use{days_left=\"7-30\"}", 1.0),
        ("certfleet_endpoints_by_expiry{days_left=\"90+\"}", 2.0),
        (
            "certfleet_endpoints_with_finding{finding=\"weak_key\"}",
            1.0,
        ),
        (
            "certfleet_endpoints_with_finding{finding=\"sha1_signature\"}",
            0.0,
        ),
        ("certfleet_endpoints_probe_status{status=\"ok\"}", 4.0),
        ("certfleet_endpoints_probe_status{status=\"never\"}", 5.0),
        ("certfleet_probe_queue{state=\"due\"}", 5.0),
        ("certfleet_notifications_failed", 1.0),
    ];
    for (series, expected) in expect {
        assert_eq!(
            value(&metrics, series),
            Some(expected),
            "{series}\n{metrics}"
        );
    }
    // Expiry series: the leaves within 14 days (and the expired one), not the others.
    let expiry = |sha256: &str| {
        metrics.contains(&format!(
            "certfleet_certificate_expiry_timestamp_seconds{{sha256=\"{sha256}\""
        ))
    };
    assert!(expiry(&fleet.api.info.sha256) && expiry(&fleet.expired.info.sha256));
    assert!(!expiry(&fleet.shop.info.sha256) && !expiry(&fleet.api_old.info.sha256));
    // Requests are labelled by template: two certificates, one series.
    let template = "route=\"/api/v1/certificates/{sha256}\",status=\"200\"";
    let counted =
        format!("certfleet_http_request_duration_seconds_count{{method=\"GET\",{template}}}");
    assert_eq!(value(&metrics, &counted), Some(2.0), "{metrics}");
    assert!(metrics.contains("route=\"unmatched\",status=\"404\""));
    assert!(
        !metrics.contains("/no/such/page"),
        "raw paths never become labels"
    );
    assert!(metrics.lines().any(|line| {
        line.starts_with("certfleet_http_request_duration_seconds_bucket{")
            && line.contains("method=\"GET\",route=\"/api/v1/certificates/{sha256}\"")
    }));
}

/// Request series: the request duration histogram's counts.
fn request_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|line| line.starts_with("certfleet_http_request_duration_seconds_count{"))
        .collect()
}

async fn request_labels_never_take_request_data(app: TestApp) {
    app.get("/healthz").await;
    let before = request_series(&app.get("/metrics").await.text()).len();
    // Methods no route knows, each spelling its own (a token of any length is a valid
    // HTTP method), on routes and on paths no route matches.
    let long = "X".repeat(100);
    let mut methods: Vec<String> = vec!["BREW".into(), "PROPFIND".into(), long.clone()];
    methods.extend((0..40).map(|n| format!("M{n}{}", &long[..n])));
    for (n, method) in methods.iter().enumerate() {
        for path in ["/healthz", "/api/v1/certificates", &format!("/no/such/{n}")] {
            let answer = send(app.address, method, path, &[], b"").await;
            assert!(answer.status >= 400, "{method} {path}: {}", answer.status);
        }
    }
    for n in 0..40 {
        app.get(&format!("/random/path/{n}?q={n}")).await;
    }

    let metrics = app.get("/metrics").await.text();
    let series = request_series(&metrics);
    println!(
        "request series: {before} before, {} after {} methods and 160 paths",
        series.len(),
        methods.len()
    );
    // GET and other methods on a handful of routes and `unmatched`, a few statuses each:
    // a fixed bound, whatever the requests spelt.
    assert!(
        series.len() <= before + 12,
        "{} series after {} distinct methods and 160 distinct paths:\n{}",
        series.len(),
        methods.len(),
        series.join("\n")
    );
    assert!(
        metrics.contains(
            "certfleet_http_request_duration_seconds_count{method=\"other\",route=\"unmatched\""
        ),
        "{metrics}"
    );
    for needle in [
        "BREW",
        "PROPFIND",
        long.as_str(),
        "M7",
        "/no/such",
        "/random/path",
    ] {
        assert!(!metrics.contains(needle), "{needle} became a label value");
    }
}

/// `certfleet_retention_pruned_total{kind}`: the totals the store keeps, whichever process
/// pruned; a counter named as promtool and OpenMetrics scrapers both read it.
async fn rows_pruned_by_retention_are_counted_by_kind(app: TestApp) {
    let kinds = ["certificates", "observations", "endpoints", "hosts"];
    let series = |kind: &str| format!("certfleet_retention_pruned_total{{kind=\"{kind}\"}}");
    let metrics = app.get("/metrics").await.text();
    for kind in kinds {
        assert_eq!(value(&metrics, &series(kind)), Some(0.0), "{metrics}");
    }
    // Everything no active endpoint serves now is older than "now".
    let policy = certfleet_store::RetentionPolicy {
        certificates: Some(time::Duration::ZERO),
        ..Default::default()
    };
    let pruned = app.store.prune(&policy).await.expect("prune");
    assert!(
        pruned.certificates > 0,
        "the seeded fleet has unserved certificates"
    );
    let response = app.get("/metrics").await;
    let metrics = response.text();
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(metrics.contains("# TYPE certfleet_retention_pruned_total counter\n"));
    for (kind, count) in pruned.by_kind() {
        assert_eq!(
            value(&metrics, &series(kind)),
            Some(count as f64),
            "{metrics}"
        );
    }
    if certfleet_testkit::promtool::promtool_or_skip() {
        certfleet_testkit::promtool::check_metrics(metrics.as_bytes());
    }
}
