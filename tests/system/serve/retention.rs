//! Retention in the real service (issue 19): `serve --roles api,scheduler` with
//! `[retention] certificate_days = 90` prunes a certificate its endpoint stopped serving
//! 100 days ago, keeps the one that endpoint serves now (though it was last probed 100
//! days ago), and counts the rows on `/metrics`, on SQLite and on PostgreSQL.
//!
//! The history is written beforehand through the store with a clock standing 100 days
//! back; the service runs on the system clock. Nothing sleeps a fixed time: `/metrics` is
//! polled until the scheduler's first run has pruned.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certfleet_model::{AgentReport, ProbeResult};
use certfleet_store::{AgentName, ManualClock, StoreOptions};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::database::{open_store, runtime, TestDatabase};
use super::http::Request;
use super::process::{certfleet, write_config, Service};
use super::reports::{report, Socket};

#[test]
fn the_scheduler_prunes_unserved_certificates_on_sqlite() {
    prunes_unserved_certificates(TestDatabase::sqlite());
}

#[test]
fn the_scheduler_prunes_unserved_certificates_on_postgres() {
    prunes_unserved_certificates(TestDatabase::postgres());
}

/// How long the scheduler's first run may take to show in `/metrics`; it normally
/// takes well under a second.
const PRUNE_LIMIT: Duration = Duration::from_secs(60);

fn sha(seed: u8) -> String {
    format!("{seed:02x}").repeat(32)
}

/// A probe at `at` that captured one self-signed leaf, `sha(seed)`.
fn served(seed: u8, at: OffsetDateTime) -> ProbeResult {
    let rfc = |time: OffsetDateTime| time.format(&Rfc3339).expect("formats");
    serde_json::from_value(json!({
        "target": "127.0.0.1:8443", "sni": null, "status": "ok", "error": null,
        "probed_at": rfc(at), "elapsed_ms": 3, "starttls": null,
        "tls": {"version": "TLSv1.3", "cipher": "TLS13_AES_128_GCM_SHA256", "alpn": null,
                "legacy": false},
        "mtls": {"requested": false, "required": null, "ca_names": []},
        "chain": [{"sha256": sha(seed), "serial": format!("{seed:x}"),
                   "subject": format!("CN=retention-{seed}"), "issuer": format!("CN=retention-{seed}"),
                   "not_before": rfc(at - time::Duration::days(10)),
                   "not_after": rfc(at + time::Duration::days(400)),
                   "sans": [], "key": {"type": "ecdsa", "bits": 256},
                   "signature_algorithm": "ecdsa-with-SHA256", "is_ca": false,
                   "self_signed": true}],
        "findings": ["self_signed"]
    }))
    .expect("a probe result in the contract's shape")
}

/// The report of this test's host, collected at `at`.
fn report_at(at: OffsetDateTime) -> AgentReport {
    let socket = Socket {
        address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        port: 8443,
        process: "nginx",
    };
    let mut report = report("retention-host", &[socket]);
    report["collected_at"] = json!(at.format(&Rfc3339).expect("formats"));
    serde_json::from_value(report).expect("a report in the contract's shape")
}

/// 100 days ago the endpoint served leaf 1, then leaf 2; today its host reports it again.
fn write_history(url: &str) {
    let now = OffsetDateTime::now_utc();
    let then = now - time::Duration::days(100);
    let clock = ManualClock::new(then);
    let options = StoreOptions {
        max_connections: 2,
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    };
    let agent = AgentName::new("retention-agent").expect("an agent name");
    runtime().block_on(async {
        let old = certfleet_store::connect(url, options)
            .await
            .expect("open the store");
        old.ingest_report(&agent, &report_at(then))
            .await
            .expect("ingest");
        let endpoints = old.endpoints(&Default::default()).await.expect("endpoints");
        let id = endpoints
            .iter()
            .find(|e| e.sni.is_none())
            .expect("the socket")
            .id;
        for seed in [1, 2] {
            let lease_for = time::Duration::minutes(5);
            let leased = old
                .lease_endpoints("retention-test", &[id], lease_for)
                .await;
            assert_eq!(leased.expect("lease").len(), 1);
            old.record_probe_results(&[(id, served(seed, clock.now()))])
                .await
                .expect("record");
            clock.advance(time::Duration::hours(1));
        }
    });
    let today = open_store(url);
    runtime()
        .block_on(today.ingest_report(&agent, &report_at(now)))
        .expect("today's report");
}

fn pruned_certificates(service: &Service) -> Option<u64> {
    let metrics = Request::get("/metrics").send(service.address).ok()?;
    let text = String::from_utf8_lossy(&metrics.body);
    let line = text
        .lines()
        .find(|line| line.starts_with("certfleet_retention_pruned_total{kind=\"certificates\"}"))?;
    line.rsplit(' ').next()?.parse().ok()
}

fn prunes_unserved_certificates(database: TestDatabase) {
    let config = write_config(database.dir(), &database.url);
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    text.push_str("\n[retention]\ncertificate_days = 90\n");
    std::fs::write(&config, text).expect("write the config");
    let path = config.to_str().expect("temporary paths are UTF-8");
    let migrated = certfleet(&["migrate", "--config", path])
        .output()
        .expect("run certfleet migrate");
    assert!(migrated.status.success(), "{migrated:?}");
    write_history(&database.url);

    let service = Service::start(&config, "api,scheduler");
    let started = Instant::now();
    while pruned_certificates(&service) != Some(1) {
        assert!(
            started.elapsed() < PRUNE_LIMIT,
            "{}: nothing pruned within {PRUNE_LIMIT:?}:\n{}",
            database.kind(),
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let certificate = |seed: u8| {
        Request::get(&format!("/api/v1/certificates/{}", sha(seed)))
            .send(service.address)
            .expect("GET a certificate")
            .status
    };
    assert_eq!(certificate(1), 404, "not served for 100 days: pruned");
    assert_eq!(
        certificate(2),
        200,
        "served now, though last probed 100 days ago"
    );
    assert!(
        service.log().contains("retention pruned"),
        "{}",
        service.log()
    );
}
