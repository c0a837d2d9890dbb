//! Two `certfleet serve --roles prober` processes on one PostgreSQL share a round of 6,000
//! endpoints: 2,000 loopback TLS ports reported by agents, each probed without SNI, then
//! under the reporting host's name and under the certificate's DNS name (names to present,
//! created as results come in). Every endpoint is probed exactly once, except the ones the
//! prober that is killed mid-round had leased, which are probed once more after its leases
//! expire (or, on a busy machine, once their 10 s lease ran out while A waited); and the
//! round completes.
//!
//! Mid-round without timers: the servers answer the first 800 connections, then hold every
//! later one (accepted, unanswered) until the test opens the gate. While both probers hold
//! leases, prober A is frozen (SIGSTOP), the endpoints it leased are read from the
//! database, A is killed (SIGKILL), and the gate opens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use certfleet_store::{AgentName, Store};
use sqlx::PgPool;

use super::database::{count, open_store, runtime, TestDatabase};
use super::fleet_servers::FleetServers;
use super::process::Service;
use super::reports::{report, Socket};
use crate::pki::{Pki, Spec};

const PORTS: usize = 2_000;
/// Each port: no SNI, the host's name, the certificate's name.
const NAMES_PER_PORT: usize = 3;
const ENDPOINTS: usize = PORTS * NAMES_PER_PORT;
const PER_HOST: usize = 100;
/// Connections served before the gate closes (40 % of the round).
const SERVED_BEFORE_GATE: usize = 800;
/// Bound on each stage (probers holding leases, the round completing); never reached when
/// things work.
const STAGE_LIMIT: Duration = Duration::from_secs(180);

// This test once found 5,892 of 6,000 endpoints: prober A was frozen between committing a
// batch of results and adding the names they revealed (then a separate transaction), and
// those names were lost. Both now commit together.
#[test]
fn two_probers_share_a_round_and_a_killed_one_loses_nothing() {
    let database = TestDatabase::postgres();
    let store = open_store(&database.url);
    runtime()
        .block_on(store.migrate())
        .expect("migrate the test database");
    let pool = runtime()
        .block_on(PgPool::connect(&database.url))
        .expect("connect to the test database");

    let pki = Pki::new();
    let leaf = pki.issue("leaf", Spec::leaf("fleet.test", &["fleet.test"]), None);
    let servers = FleetServers::start(PORTS, &leaf, SERVED_BEFORE_GATE);
    ingest(&*store, &servers.ports);
    assert_eq!(count(&pool, "SELECT count(*) FROM endpoints"), PORTS as i64);

    // A's leases expire 10 s after it leased them; B keeps the default (5 minutes), so
    // only A's endpoints can ever be leased twice.
    let mut prober_a =
        Service::start_in_background(&prober_config(&database, "a", "10s"), "prober");
    let prober_b = Service::start_in_background(&prober_config(&database, "b", "5m"), "prober");
    let started = Instant::now();
    let (owner_a, owner_b) = (worker_id(&prober_a), worker_id(&prober_b));
    let logs = [("A", "prober-a"), ("B", "prober-b")]
        .map(|(name, folder)| (name, database.dir().join(folder).join("serve-prober.log")));
    let context = || {
        logs.iter()
            .map(|(name, path)| {
                let log = std::fs::read_to_string(path).unwrap_or_default();
                format!("prober {name} log:\n{log}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Every endpoint A is seen to lease, not only those it holds when frozen: on a busy
    // machine a 10 s lease can expire while A's handshake waits behind the gate, and B
    // then leases and probes the endpoint too (A's late result is fenced off, but the
    // server counted A's connection).
    let mut ever_leased_by_a: HashMap<i64, u16> = HashMap::new();
    wait_until(
        "both probers holding leases behind the closed gate",
        &context,
        || {
            ever_leased_by_a.extend(leases_of(&pool, &owner_a));
            servers.accepted() > SERVED_BEFORE_GATE
                && leased_by(&pool, &owner_a) > 0
                && leased_by(&pool, &owner_b) > 0
        },
    );
    prober_a.freeze();
    ever_leased_by_a.extend(leases_of(&pool, &owner_a));
    let mut held_by_a: HashMap<u16, usize> = HashMap::new();
    for port in ever_leased_by_a.values() {
        *held_by_a.entry(*port).or_insert(0) += 1;
    }
    let recorded_before_kill = recorded(&pool);
    prober_a.kill();
    servers.open_gate();
    let counts = || {
        let unfinished = "SELECT count(*) FROM endpoints \
             WHERE last_probed_at IS NULL OR lease_owner IS NOT NULL";
        let bad = "SELECT count(*) FROM endpoints WHERE NOT (sni IN ('', 'fleet.test') \
             OR sni LIKE 'fleet-%')";
        format!(
            "{} endpoints, {} recorded, {} unfinished, {} unexpected names\n{}",
            all(&pool),
            recorded(&pool),
            count(&pool, unfinished),
            count(&pool, bad),
            context()
        )
    };
    wait_until("every endpoint probed and recorded", &counts, || {
        recorded(&pool) == ENDPOINTS as i64 && all(&pool) == ENDPOINTS as i64
    });
    let round = started.elapsed();

    assert!(!held_by_a.is_empty(), "prober A held no lease when killed");
    let names = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE sni IN ('', 'fleet.test') OR sni LIKE 'fleet-%'",
    );
    assert_eq!(
        names, ENDPOINTS as i64,
        "endpoints other than the expected names"
    );
    assert!(
        recorded_before_kill > 0 && recorded_before_kill < ENDPOINTS as i64,
        "the kill was not mid-round: {recorded_before_kill} recorded before it"
    );
    let mut twice = 0;
    let mut wrong = Vec::new();
    for (index, port) in servers.ports.iter().enumerate() {
        let connections = servers.connections(index);
        let held = held_by_a.get(port).copied().unwrap_or(0);
        let allowed = NAMES_PER_PORT..=NAMES_PER_PORT + held;
        if !allowed.contains(&connections) {
            wrong.push(format!("port {port}: {connections} connections"));
        }
        twice += connections.saturating_sub(NAMES_PER_PORT);
    }
    assert!(
        wrong.is_empty(),
        "ports whose endpoints were not probed exactly once ({} of them, A held {}):\n{}",
        wrong.len(),
        held_by_a.values().sum::<usize>(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    let ok = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE last_status = 'ok' AND observation_id IS NOT NULL",
    );
    assert_eq!(
        ok,
        ENDPOINTS as i64,
        "endpoints without an ok observation\n{}",
        context()
    );
    // Recorded once means due again only next round (the interval is 24 h, jitter 10 %).
    let due_soon = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE next_probe_at < now() + interval '12 hours' \
         OR lease_owner IS NOT NULL",
    );
    assert_eq!(
        due_soon, 0,
        "endpoints leased or due again within the round"
    );
    eprintln!(
        "scale-out: {ENDPOINTS} endpoints ({PORTS} ports x {NAMES_PER_PORT} names) in {:.1} s \
         with two probers; A killed holding {} leases ({recorded_before_kill} recorded \
         before), {twice} probes repeated",
        round.as_secs_f64(),
        held_by_a.values().sum::<usize>(),
    );
    runtime().block_on(pool.close());
}

/// One agent report per 100 endpoints, each socket at 127.0.0.1 on its own port.
fn ingest(store: &dyn Store, ports: &[u16]) {
    let agent = AgentName::new("scale-out").expect("a valid agent name");
    for (host, ports) in ports.chunks(PER_HOST).enumerate() {
        let sockets: Vec<Socket> = ports
            .iter()
            .map(|port| Socket {
                address: [127, 0, 0, 1].into(),
                port: *port,
                process: "fleet",
            })
            .collect();
        let report = report(&format!("fleet-{host}"), &sockets);
        let report = serde_json::from_value(report).expect("the test report is valid");
        runtime()
            .block_on(store.ingest_report(&agent, &report))
            .expect("ingest a report");
    }
}

/// A folder of its own for one prober (its config and log) with a lease of `lease`.
fn prober_config(database: &TestDatabase, name: &str, lease: &str) -> PathBuf {
    let dir = database.dir().join(format!("prober-{name}"));
    std::fs::create_dir_all(&dir).expect("create the prober's folder");
    write(&dir, &database.url, lease)
}

/// 32 probes in flight and leases of 100: each prober holds at most a few hundred
/// endpoints, so both get a share of the thousands behind the gate. The probe timeout is long
/// because the gate holds handshakes for as long as the test needs.
fn write(dir: &Path, url: &str, lease: &str) -> PathBuf {
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 4\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"60s\"\nconcurrency = 32\n\
         batch = 100\nlease = {lease:?}\nmax_per_address = 64\n"
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the prober config");
    path
}

/// The lease owner a prober writes: `HOSTNAME/PID`.
fn worker_id(service: &Service) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "prober".into());
    format!("{host}/{}", service.pid())
}

fn leased_by(pool: &PgPool, owner: &str) -> usize {
    leases_of(pool, owner).len()
}

/// The endpoints `owner` has leased and not yet recorded, with their ports.
fn leases_of(pool: &PgPool, owner: &str) -> Vec<(i64, u16)> {
    let rows: Vec<(i64, i32)> = runtime()
        .block_on(
            sqlx::query_as("SELECT id, port FROM endpoints WHERE lease_owner = $1")
                .bind(owner)
                .fetch_all(pool),
        )
        .expect("read the leases");
    rows.into_iter()
        .map(|(id, port)| (id, u16::try_from(port).expect("a port")))
        .collect()
}

fn all(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM endpoints")
}

fn recorded(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM endpoints WHERE last_probed_at IS NOT NULL AND lease_owner IS NULL",
    )
}

fn wait_until(what: &str, context: &dyn Fn() -> String, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, STAGE_LIMIT, context, done);
}
