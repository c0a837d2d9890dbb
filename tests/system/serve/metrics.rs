//! `/metrics` of the real service passes Prometheus's own check, `promtool check metrics`
//! (syntax, types, help, names and units), with fleet gauges from a report and request
//! series that include an unknown method.

use std::net::{IpAddr, Ipv4Addr};

use super::database::TestDatabase;
use super::http::Request;
use super::process::{create_token, write_config, Service};
use super::reports::{post_report, report, Socket};

#[test]
fn promtool_accepts_the_metrics_of_a_running_service() {
    if !certfleet_testkit::promtool::promtool_or_skip() {
        return;
    }
    let database = TestDatabase::sqlite();
    let config = write_config(database.dir(), &database.url);
    let token = create_token(&config, "metrics-agent");
    let service = Service::start(&config, "api");
    let socket = Socket {
        address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        port: 8443,
        process: "nginx",
    };
    let answer = post_report(&service, &token, &report("metrics-host", &[socket]));
    assert_eq!(answer.status, 202, "{}", answer.describe());
    let brewed = Request::get("/healthz")
        .method("BREW")
        .send(service.address)
        .expect("BREW /healthz");
    assert!(brewed.status >= 400, "{}", brewed.describe());

    let metrics = Request::get("/metrics")
        .send(service.address)
        .expect("GET /metrics");
    assert_eq!(metrics.status, 200, "{}", metrics.describe());
    let text = String::from_utf8_lossy(&metrics.body);
    for present in [
        "certfleet_hosts ",
        "certfleet_endpoints_by_expiry{",
        "certfleet_http_request_duration_seconds_count{method=\"other\"",
        "certfleet_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/reports\",status=\"202\"} 1",
    ] {
        assert!(text.contains(present), "no {present} in:\n{text}");
    }
    certfleet_testkit::promtool::check_metrics(&metrics.body);
}
