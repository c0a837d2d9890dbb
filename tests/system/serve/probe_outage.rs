//! PostgreSQL killed (SIGKILL, every backend at once) while a `certfleet serve --roles
//! prober` is mid-round, and started again: the prober recovers on its own, and every
//! endpoint ends recorded, once (one observation each, no endpoint twice, no lease left).
//!
//! Mid-round without timers: the loopback TLS servers answer the first connections, then
//! hold later ones until the test opens the gate. With the prober holding leases behind
//! the gate, PostgreSQL is killed, the gate opens (so results come in while the database
//! is away), and once the prober has said it cannot record them, PostgreSQL starts again.

use std::time::{Duration, Instant};

use certfleet_store::AgentName;
use sqlx::PgPool;

use super::database::{count, open_store, runtime};
use super::fleet_servers::FleetServers;
use super::private_pg::PrivatePostgres;
use super::process::Service;
use super::reports::{report, Socket};
use crate::pki::{Pki, Spec};

const PORTS: usize = 600;
const PER_HOST: usize = 100;
/// Connections served before the gate closes.
const SERVED_BEFORE_GATE: usize = 200;
/// Bound on each stage; never reached when things work.
const STAGE_LIMIT: Duration = Duration::from_secs(180);
/// Bound on waiting for the prober to say it cannot record (then the test goes on anyway).
const NOTICE_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn restarting_postgres_mid_round_loses_no_probe_and_records_none_twice() {
    let mut postgres = match PrivatePostgres::start() {
        Ok(postgres) => postgres,
        Err(why) => {
            certfleet_testkit::skip(&format!("cannot run a private PostgreSQL here: {why}"));
            return;
        }
    };
    let url = postgres.url();
    let pki = Pki::new();
    let leaf = pki.issue("outage", Spec::leaf("outage.test", &["outage.test"]), None);
    let servers = FleetServers::start(PORTS, &leaf, SERVED_BEFORE_GATE);
    {
        let store = open_store(&url);
        runtime().block_on(store.migrate()).expect("migrate");
        let agent = AgentName::new("probe-outage").expect("a valid agent name");
        for (host, ports) in servers.ports.chunks(PER_HOST).enumerate() {
            let sockets: Vec<Socket> = ports
                .iter()
                .map(|port| Socket {
                    address: [127, 0, 0, 1].into(),
                    port: *port,
                    process: "outage",
                })
                .collect();
            let report = report(&format!("outage-{host}"), &sockets);
            let report = serde_json::from_value(report).expect("the test report is valid");
            runtime()
                .block_on(store.ingest_report(&agent, &report))
                .expect("ingest a report");
        }
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = dir.path().join("certfleet.toml");
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 4\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"60s\"\nconcurrency = 32\n\
         batch = 100\nlease = \"20s\"\n"
    );
    std::fs::write(&config, text).expect("write the prober config");
    let prober = Service::start_in_background(&config, "prober");
    let context = |postgres: &PrivatePostgres| {
        format!(
            "prober log:\n{}\nPostgreSQL log:\n{}",
            super::load::tail(&prober.log(), 80),
            super::load::tail(&postgres.log(), 40)
        )
    };

    wait_until("the prober holding leases behind the closed gate", || {
        servers.accepted() > SERVED_BEFORE_GATE
    });
    let started = Instant::now();
    postgres.kill();
    servers.open_gate();
    let notice = Instant::now();
    while !prober.log().contains("cannot record probe results") && notice.elapsed() < NOTICE_LIMIT {
        std::thread::sleep(Duration::from_millis(50));
    }
    let noticed = prober.log().contains("cannot record probe results");
    postgres.restart();
    let down = started.elapsed();

    let pool = runtime()
        .block_on(PgPool::connect(&url))
        .expect("connect to the restarted PostgreSQL");
    let unfinished = "SELECT count(*) FROM endpoints \
         WHERE last_probed_at IS NULL OR lease_owner IS NOT NULL";
    let waited = Instant::now();
    loop {
        let left = count(&pool, unfinished);
        let no_sni = count(&pool, "SELECT count(*) FROM endpoints WHERE sni = ''");
        if left == 0 && no_sni == PORTS as i64 {
            break;
        }
        assert!(
            waited.elapsed() < STAGE_LIMIT,
            "{left} endpoints unfinished after the restart\n{}",
            context(&postgres)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered = waited.elapsed();

    let endpoints = count(&pool, "SELECT count(*) FROM endpoints");
    let ok = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE last_status = 'ok' AND observation_id IS NOT NULL",
    );
    assert_eq!(
        ok,
        endpoints,
        "endpoints without an ok observation\n{}",
        context(&postgres)
    );
    let twice = count(
        &pool,
        "SELECT count(*) FROM (SELECT endpoint_id FROM observations \
         GROUP BY endpoint_id HAVING count(*) > 1) AS repeated",
    );
    assert_eq!(twice, 0, "endpoints with more than one observation");
    let orphans = count(
        &pool,
        "SELECT count(*) FROM observations o WHERE NOT EXISTS \
         (SELECT 1 FROM endpoints e WHERE e.id = o.endpoint_id)",
    );
    assert_eq!(orphans, 0, "observations of no endpoint");
    let unprobed: Vec<u16> = (0..PORTS)
        .filter(|&index| servers.connections(index) == 0)
        .map(|index| servers.ports[index])
        .collect();
    assert!(unprobed.is_empty(), "ports never probed: {unprobed:?}");
    let probes: usize = (0..PORTS).map(|index| servers.connections(index)).sum();
    eprintln!(
        "probe outage: {PORTS} ports, {endpoints} endpoints (with the names to present) all \
         recorded once, {ok} ok; PostgreSQL down {:.1} s (prober noticed: {noticed}); \
         round finished {:.1} s after the restart; {probes} connections in all \
         ({} beyond one per endpoint: probes repeated after the outage)",
        down.as_secs_f64(),
        recovered.as_secs_f64(),
        probes.saturating_sub(endpoints as usize),
    );
    runtime().block_on(pool.close());
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, STAGE_LIMIT, &String::new, done);
}
