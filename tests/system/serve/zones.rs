//! Network zones (issue 17) against the real binary on one PostgreSQL: an `api` process and
//! two `certfleet serve --roles prober` processes, one serving `zone-a`, the other
//! `zone-b`. Host A names its zone with the tag `zone = "zone-a"` (which wins over the
//! CIDR); host B is placed in `zone-b` by the CIDR `127.0.0.0/8`.
//!
//! 1. Only the zone-a prober runs: host A's endpoints are probed; host B's stay due (never
//!    connected to, not `denied`), and the API, the probers page and the dashboard say
//!    that zone-b has due endpoints and no live prober.
//! 2. The zone-b prober starts: it probes host B's endpoints.
//! 3. The zone-a prober is killed (SIGKILL) and both hosts report new sockets: zone-b's
//!    are probed, zone-a's queue grows, and the dashboard and `/metrics` say so.
//!
//! No timers: each step polls for what the previous one must have caused.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use super::database::{count, runtime, TestDatabase};
use super::fleet_servers::FleetServers;
use super::http::Request;
use super::process::{create_token, write_config, Service};
use super::reports::{endpoints_at, post_report, report, Socket};
use crate::pki::{Pki, Spec};

/// Ports per host: the first half reported at once, the second after the kill.
const PORTS_PER_HOST: usize = 4;
/// Bound on each step; never reached when things work.
const STEP_LIMIT: Duration = Duration::from_secs(90);

const ZONES: &str = "\n[[zones]]\nname = \"zone-a\"\ncidrs = []\n\n\
                     [[zones]]\nname = \"zone-b\"\ncidrs = [\"127.0.0.0/8\"]\n";

#[test]
fn each_zone_is_probed_only_by_its_probers_and_a_zone_without_one_is_shown() {
    let database = TestDatabase::postgres();
    let pki = Pki::new();
    let leaf = pki.issue("leaf", Spec::leaf("zones.test", &["zones.test"]), None);
    let servers = FleetServers::start(2 * PORTS_PER_HOST, &leaf, usize::MAX);
    let (ports_a, ports_b) = servers.ports.split_at(PORTS_PER_HOST);
    let half = PORTS_PER_HOST / 2;

    let config = write_config(database.dir(), &database.url);
    let text = std::fs::read_to_string(&config).expect("read the config");
    std::fs::write(&config, format!("{text}{ZONES}")).expect("write the config");
    let api = Service::start(&config, "api");
    let pool = runtime()
        .block_on(PgPool::connect(&database.url))
        .expect("connect to the test database");
    let agent = create_token(&config, "zones-agent");
    let report_hosts = |reported: usize| {
        for (host, ports, zone_tag) in [
            ("host-a", ports_a, Some("zone-a")),
            ("host-b", ports_b, None),
        ] {
            let answer = post_report(
                &api,
                &agent,
                &host_report(host, &ports[..reported], zone_tag),
            );
            assert_eq!(answer.status, 202, "{host}: {}", answer.describe());
        }
    };
    report_hosts(half);
    assert_eq!(
        endpoints_at(&api, ports_a[0])[0]["zone"],
        "zone-a",
        "the tag wins"
    );
    assert_eq!(
        endpoints_at(&api, ports_b[0])[0]["zone"],
        "zone-b",
        "the CIDR places it"
    );

    // 1. Only the zone-a prober.
    let mut prober_a = Service::start_in_background(&prober_config(&database, "a"), "prober");
    // Read from its file: prober A is killed while this is still in use.
    let log_a = database.dir().join("prober-a").join("serve-prober.log");
    let context = |what: &str| {
        let log = std::fs::read_to_string(&log_a).unwrap_or_default();
        format!("{what}\n{}\nprober A log:\n{log}", state(&pool))
    };
    wait_until("host A's endpoints probed", &|| context(""), || {
        unfinished(&pool, "zone-a") == 0 && probed(&pool, "zone-a") >= half as i64
    });
    let (due_b, probed_b, denied_b) = (
        count(&pool, &due_in("zone-b")),
        probed(&pool, "zone-b"),
        count(
            &pool,
            "SELECT count(*) FROM endpoints WHERE last_status = 'denied'",
        ),
    );
    assert_eq!(
        (due_b, probed_b, denied_b),
        (half as i64, 0, 0),
        "{}",
        context("")
    );
    for index in 0..half {
        assert_eq!(
            servers.connections(PORTS_PER_HOST + index),
            0,
            "zone-b never connected"
        );
    }
    let probers = get_json(&api, "/api/v1/probers");
    let listed = probers["probers"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{probers}");
    assert_eq!(
        listed[0]["zones"],
        serde_json::json!(["zone-a"]),
        "{probers}"
    );
    assert_eq!(listed[0]["live"], true, "{probers}");
    assert!(listed[0]["version"].is_string() && listed[0]["last_seen"].is_string());
    let zone_b = zone(&probers, "zone-b");
    assert_eq!(zone_b["due"], half, "{probers}");
    assert_eq!(zone_b["live_probers"], 0, "{probers}");
    assert_eq!(zone_b["stranded"], true, "{probers}");
    let line = format!("zone zone-b: {half} due, no live prober");
    wait_until(
        "the dashboard shows zone-b without a prober",
        &|| context(&page(&api, "/")),
        || page(&api, "/").contains(&line),
    );
    let probers_page = page(&api, "/probers");
    assert!(
        probers_page.contains("(due endpoints, no live prober)"),
        "{probers_page}"
    );

    // 2. The zone-b prober starts and takes zone-b's endpoints.
    let prober_b = Service::start_in_background(&prober_config(&database, "b"), "prober");
    wait_until(
        "host B's endpoints probed by the zone-b prober",
        &|| context(&prober_b.log()),
        || unfinished(&pool, "zone-b") == 0 && probed(&pool, "zone-b") >= half as i64,
    );
    let probers = get_json(&api, "/api/v1/probers");
    assert_eq!(zone(&probers, "zone-b")["stranded"], false, "{probers}");
    assert_eq!(zone(&probers, "zone-b")["live_probers"], 1, "{probers}");

    // 3. The zone-a prober dies; both hosts report new sockets.
    prober_a.kill();
    report_hosts(PORTS_PER_HOST);
    wait_until(
        "the new zone-b sockets probed, zone-a's queue grown",
        &|| context(""),
        || {
            unfinished(&pool, "zone-b") == 0
                && probed(&pool, "zone-b") >= PORTS_PER_HOST as i64
                && count(&pool, &due_in("zone-a")) == (PORTS_PER_HOST - half) as i64
        },
    );
    for index in half..PORTS_PER_HOST {
        assert_eq!(
            servers.connections(index),
            0,
            "zone-a's new sockets never connected"
        );
        assert!(
            servers.connections(PORTS_PER_HOST + index) > 0,
            "zone-b's new sockets probed"
        );
    }
    let grown = format!("zone zone-a: {} due, no live prober", PORTS_PER_HOST - half);
    wait_until(
        "the dashboard shows zone-a without a live prober",
        &|| context(&page(&api, "/")),
        || page(&api, "/").contains(&grown),
    );
    let dashboard = page(&api, "/");
    assert!(
        !dashboard.contains("zone zone-b:"),
        "zone-b is served:\n{dashboard}"
    );
    let metrics = page(&api, "/metrics");
    for (series, value) in [
        ("certfleet_probers_live{zone=\"zone-a\"}", 0),
        ("certfleet_probers_live{zone=\"zone-b\"}", 1),
        (
            "certfleet_probe_queue_due{zone=\"zone-a\"}",
            PORTS_PER_HOST - half,
        ),
        ("certfleet_probe_queue_due{zone=\"zone-b\"}", 0),
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line == format!("{series} {value}")),
            "{series} {value} missing:\n{metrics}"
        );
    }
    let probers = get_json(&api, "/api/v1/probers");
    let live: Vec<&Value> = probers["probers"]
        .as_array()
        .map(|all| all.iter().filter(|p| p["live"] == true).collect())
        .unwrap_or_default();
    assert_eq!(live.len(), 1, "only the zone-b prober is live: {probers}");
    assert_eq!(live[0]["zones"], serde_json::json!(["zone-b"]), "{probers}");
    runtime().block_on(pool.close());
}

/// A host's report of its sockets at 127.0.0.1, with the `zone` tag when given.
fn host_report(host: &str, ports: &[u16], zone: Option<&str>) -> Value {
    let sockets: Vec<Socket> = ports
        .iter()
        .map(|port| Socket {
            address: [127, 0, 0, 1].into(),
            port: *port,
            process: "svc",
        })
        .collect();
    let mut report = report(host, &sockets);
    if let Some(zone) = zone {
        report["host"]["tags"]["zone"] = zone.into();
    }
    report
}

/// A prober's folder and config: the zone it serves, a heartbeat of a second.
fn prober_config(database: &TestDatabase, zone: &str) -> PathBuf {
    let dir = database.dir().join(format!("prober-{zone}"));
    std::fs::create_dir_all(&dir).expect("create the prober's folder");
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 4\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"5s\"\nptr_names = false\n\
         zones = [\"zone-{zone}\"]\nheartbeat = \"1s\"\n{ZONES}",
        url = database.url,
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the prober config");
    path
}

/// Endpoints of `zone` not yet probed, or leased now.
fn unfinished(pool: &PgPool, zone: &str) -> i64 {
    count(
        pool,
        &format!(
            "SELECT count(*) FROM endpoints WHERE zone = '{zone}' \
             AND (last_probed_at IS NULL OR lease_owner IS NOT NULL)"
        ),
    )
}

fn probed(pool: &PgPool, zone: &str) -> i64 {
    count(
        pool,
        &format!("SELECT count(*) FROM endpoints WHERE zone = '{zone}' AND last_status = 'ok'"),
    )
}

fn due_in(zone: &str) -> String {
    format!(
        "SELECT count(*) FROM endpoints WHERE zone = '{zone}' AND retired_at IS NULL \
         AND next_probe_at <= now() AND last_probed_at IS NULL"
    )
}

/// Every endpoint's zone, port, name, status and lease, for failure messages.
fn state(pool: &PgPool) -> String {
    let rows: Vec<(String,)> = runtime()
        .block_on(
            sqlx::query_as(
                "SELECT concat_ws(' ', zone, port, sni, last_status, lease_owner) \
                 FROM endpoints ORDER BY id",
            )
            .fetch_all(pool),
        )
        .unwrap_or_default();
    let lines: Vec<String> = rows.into_iter().map(|(row,)| row).collect();
    lines.join("\n")
}

fn get_json(api: &Service, path: &str) -> Value {
    let answer = Request::get(path)
        .send(api.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}\n{}", api.log()));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.describe());
    answer.json()
}

fn page(api: &Service, path: &str) -> String {
    let answer = Request::get(path)
        .send(api.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}\n{}", api.log()));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.describe());
    String::from_utf8_lossy(&answer.body).into_owned()
}

fn zone<'a>(probers: &'a Value, name: &str) -> &'a Value {
    probers["zones"]
        .as_array()
        .and_then(|zones| zones.iter().find(|zone| zone["zone"] == name))
        .unwrap_or_else(|| panic!("zone {name} not listed: {probers}"))
}

fn wait_until(what: &str, context: &dyn Fn() -> String, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, STEP_LIMIT, context, done);
}
