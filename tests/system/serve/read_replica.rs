//! `database.read_url` against a real streaming replica: a private primary and a hot
//! standby made from it with `pg_basebackup -R` on another port. A report written to the
//! primary is read back through the replica; with replay paused on the standby the lag
//! grows past `database.read_max_lag` and reads go to the primary (fresh data, counted);
//! with the standby stopped `/readyz` says so and reads still answer. `certfleet export`
//! reads the replica while it keeps up, and the primary while replay is paused.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::http::{Request, Response};
use super::private_pg::PrivatePostgres;
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{endpoints_at, post_report, report, Socket};

/// Bound on each wait (the replica catching up, the lag growing, the standby's stop seen).
const LIMIT: Duration = Duration::from_secs(60);

/// The bound under test: small, so that a paused replay crosses it within seconds.
const MAX_LAG: &str = "2s";

#[test]
fn api_reads_follow_the_replica_and_fall_back_to_the_primary() {
    let primary = match PrivatePostgres::start() {
        Ok(primary) => primary,
        Err(why) => {
            certfleet_testkit::skip(&format!("cannot run a private PostgreSQL here: {why}"));
            return;
        }
    };
    let mut standby = PrivatePostgres::standby_of(&primary).expect("a standby of the primary");
    let recovery = standby.psql("SELECT pg_is_in_recovery()");
    assert_eq!(recovery.as_deref(), Ok("t\n"), "{}", standby.log());
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = write_config(dir.path(), &primary.url());
    let token = create_token(&config, "replica-agent");
    let read_url = standby.url();
    let env = [
        ("CERTFLEET_DATABASE__READ_URL", read_url.as_str()),
        ("CERTFLEET_DATABASE__READ_MAX_LAG", MAX_LAG),
    ];
    let service = Service::start_with_env(&config, "api", &env);
    let context = || {
        format!(
            "readyz: {}\nmetrics:\n{}\nservice log:\n{}",
            body(&get(&service, "/readyz")),
            replica_metrics(&service),
            service.log()
        )
    };

    // Written to the primary, read back through the replica.
    let first = post_report(&service, &token, &report("replica-a", &[socket(9101)]));
    assert_eq!(first.status, 202, "{}", first.describe());
    wait("the first report on the replica", &context, || {
        standby_count(&standby, 9101) > 0 && body(&get(&service, "/readyz")).contains("replica: up")
    });
    let before = gauge(&service, "certfleet_database_replica_fallback_reads");
    assert_eq!(endpoints_at(&service, 9101).len(), 1, "{}", context());
    assert_eq!(
        gauge(&service, "certfleet_database_replica_fallback_reads"),
        before,
        "a read went to the primary while the replica was up\n{}",
        context()
    );
    assert_eq!(gauge(&service, "certfleet_database_replica_up"), 1.0);
    let (rows, log) = export_endpoints(&config, &env);
    assert!(rows.contains("\"port\":9101"), "{rows}\n{log}");
    assert!(
        log.contains("\"fallback_reads\":0"),
        "export read the primary:\n{log}"
    );

    // Replay paused: the standby stops applying what the primary writes.
    let paused = standby.psql("SELECT pg_wal_replay_pause()");
    assert!(paused.is_ok(), "{paused:?}\n{}", standby.log());
    let second = post_report(&service, &token, &report("replica-b", &[socket(9102)]));
    assert_eq!(second.status, 202, "{}", second.describe());
    wait("the second report read from the primary", &context, || {
        endpoints_at(&service, 9102).len() == 1
            && gauge(&service, "certfleet_database_replica_lag_seconds") > 2.0
    });
    assert_eq!(standby_count(&standby, 9102), 0, "the standby replayed on");
    assert!(gauge(&service, "certfleet_database_replica_fallback_reads") > before);
    let readyz = get(&service, "/readyz");
    assert_eq!(readyz.status, 200, "{}", readyz.describe());
    assert!(
        body(&readyz).contains("replica: behind by"),
        "{}",
        context()
    );

    // Standby stopped: still ready (the primary answers reads), and it says so.
    standby.kill();
    wait("readyz to say the replica is down", &context, || {
        let readyz = get(&service, "/readyz");
        readyz.status == 200 && body(&readyz).contains("replica: down")
    });
    assert_eq!(endpoints_at(&service, 9101).len(), 1, "{}", context());
    assert_eq!(endpoints_at(&service, 9102).len(), 1, "{}", context());
    assert_eq!(gauge(&service, "certfleet_database_replica_up"), 0.0);
    if certfleet_testkit::promtool::promtool_or_skip() {
        certfleet_testkit::promtool::check_metrics(&get(&service, "/metrics").body);
    }
}

/// `certfleet export endpoints` with the replica configured: its rows and its log (JSON
/// lines).
fn export_endpoints(config: &std::path::Path, env: &[(&str, &str)]) -> (String, String) {
    let config = config.to_str().expect("temporary paths are UTF-8");
    let output = certfleet(&["export", "endpoints", "--config", config])
        .env("RUST_LOG", "info")
        .env("CERTFLEET_LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .output()
        .expect("run certfleet export");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "export failed: {log}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), log)
}

fn socket(port: u16) -> Socket {
    Socket {
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        process: "nginx",
    }
}

/// Endpoints at 127.0.0.1:`port` as the standby sees them (0 before the schema reached it).
fn standby_count(standby: &PrivatePostgres, port: u16) -> u64 {
    let sql = format!("SELECT count(*) FROM endpoints WHERE port = {port}");
    let counted = standby.psql(&sql).map(|count| count.trim().parse().ok());
    counted.ok().flatten().unwrap_or(0)
}

fn get(service: &Service, path: &str) -> Response {
    Request::get(path)
        .send(service.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}\n{}", service.log()))
}

fn body(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The replica's lines of `/metrics`.
fn replica_metrics(service: &Service) -> String {
    let metrics = body(&get(service, "/metrics"));
    let lines: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("certfleet_database_replica"))
        .collect();
    lines.join("\n")
}

/// The value of an unlabelled gauge (`-1` when absent).
fn gauge(service: &Service, name: &str) -> f64 {
    let metrics = body(&get(service, "/metrics"));
    let prefix = format!("{name} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(-1.0)
}

fn wait(what: &str, context: &dyn Fn() -> String, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, LIMIT, context, done);
}
