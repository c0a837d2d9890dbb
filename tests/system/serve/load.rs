//! Load: many agents report at once to one real `certfleet serve` with every role (API,
//! probers, scheduler) on a fresh PostgreSQL database, while its probers probe the
//! loopback TLS endpoints the reports name and a reader pages through the JSON API.
//!
//! The number of simulated hosts is `CERTFLEET_LOAD_AGENTS` (default 200, quick enough
//! for every test run; `bench/load.sh` runs 2,000) and the number of reports in flight
//! `CERTFLEET_LOAD_CONCURRENCY` (default 32). A report refused with 429 or 503 is sent
//! again, as an agent does. The figures (accept rate, latency percentiles, answers by
//! status) are printed, never asserted; what is asserted is that nothing was lost or
//! duplicated: every accepted report's sockets are endpoints of its host, once each, and
//! every answer was 202, 429 or 503 (never 500, never a dropped connection).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::database::{count, runtime, TestDatabase};
use super::fleet_servers::FleetServers;
use super::http::Request;
use super::process::{create_token, Service};
use super::reports::{bytes, gzip, report, Socket};
use crate::pki::{Pki, Spec};

/// Sockets per host: one loopback TLS port the probers reach, and four at an address of
/// the host's own outside `probe.allow` (recorded as denied, never connected to).
const SOCKETS_PER_HOST: usize = 5;
/// Times a refused (429/503) report is sent again before the test gives up on it.
const RETRIES: usize = 20;
/// Bound on the probers finishing the loopback endpoints after the load.
const PROBE_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn many_agents_report_at_once_while_probers_and_readers_run_and_nothing_is_lost() {
    let agents = env_count("CERTFLEET_LOAD_AGENTS", 200);
    let concurrency = env_count("CERTFLEET_LOAD_CONCURRENCY", 32);
    let database = TestDatabase::postgres();
    let pki = Pki::new();
    let leaf = pki.issue("load", Spec::leaf("load.test", &["load.test"]), None);
    let servers = FleetServers::start(agents, &leaf, usize::MAX);
    let config = write_load_config(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober,scheduler");
    let token = create_token(&config, "load-agent");
    let bodies: Vec<Vec<u8>> = (0..agents)
        .map(|host| {
            gzip(&bytes(&report(
                &hostname(host),
                &sockets_of(host, &servers),
            )))
        })
        .collect();

    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::with_capacity(agents));
    let statuses = Mutex::new(BTreeMap::<String, usize>::new());
    let accepted = Mutex::new(Vec::with_capacity(agents));
    let reads = Mutex::new(Reads::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| read_while_loading(service.address, &done, &reads));
        let posters: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| loop {
                    let host = next.fetch_add(1, Ordering::SeqCst);
                    if host >= agents {
                        return;
                    }
                    for _ in 0..=RETRIES {
                        let sent = Instant::now();
                        let answer = Request::post_json("/api/v1/reports", bodies[host].clone())
                            .header("Content-Encoding", "gzip")
                            .bearer(&token)
                            .send(service.address);
                        latencies.lock().expect("not poisoned").push(sent.elapsed());
                        let status = match &answer {
                            Ok(response) => response.status.to_string(),
                            Err(error) => format!("no answer ({:?})", error.kind()),
                        };
                        *statuses
                            .lock()
                            .expect("not poisoned")
                            .entry(status)
                            .or_default() += 1;
                        match answer {
                            Ok(response) if response.status == 202 => {
                                accepted.lock().expect("not poisoned").push(host);
                                break;
                            }
                            Ok(response) if matches!(response.status, 429 | 503) => {
                                // An agent backs off; a short pause keeps the retry honest.
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        for poster in posters {
            poster.join().expect("a poster thread");
        }
        done.store(true, Ordering::SeqCst);
    });
    let elapsed = started.elapsed();
    let accepted = accepted.into_inner().expect("not poisoned");
    let statuses = statuses.into_inner().expect("not poisoned");
    let mut latencies = latencies.into_inner().expect("not poisoned");
    let reads = reads.into_inner().expect("not poisoned");
    latencies.sort();
    eprintln!(
        "load: {agents} hosts x {SOCKETS_PER_HOST} sockets, {concurrency} in flight: \
         {} accepted in {:.2} s = {:.0} reports/s ({:.0} sockets/s)",
        accepted.len(),
        elapsed.as_secs_f64(),
        accepted.len() as f64 / elapsed.as_secs_f64(),
        (accepted.len() * SOCKETS_PER_HOST) as f64 / elapsed.as_secs_f64(),
    );
    eprintln!("load: report latency {}", percentiles(&latencies));
    eprintln!("load: report answers by status {statuses:?}");
    let mut read_latencies = reads.latencies.clone();
    read_latencies.sort();
    eprintln!(
        "load: {} API reads during the load, answers by status {:?}, latency {}",
        read_latencies.len(),
        reads.statuses,
        percentiles(&read_latencies)
    );
    let context = || format!("service log:\n{}", tail(&service.log(), 60));

    // Every answer was an acceptance or a "come back later"; nothing else.
    let wrong: Vec<&String> = statuses
        .keys()
        .filter(|status| !matches!(status.as_str(), "202" | "429" | "503"))
        .collect();
    assert!(wrong.is_empty(), "answers {statuses:?}\n{}", context());
    assert_eq!(
        accepted.len(),
        agents,
        "reports never accepted after {RETRIES} retries: {statuses:?}\n{}",
        context()
    );
    let bad_reads: Vec<&String> = reads.statuses.keys().filter(|s| *s != "200").collect();
    assert!(bad_reads.is_empty(), "reads answered {:?}", reads.statuses);

    // Nothing lost, nothing twice: each host's sockets are its endpoints, once each.
    let pool = runtime()
        .block_on(PgPool::connect(&database.url))
        .expect("connect to the test database");
    let rows: Vec<(String, String, i32)> = runtime()
        .block_on(
            sqlx::query_as(
                "SELECT h.hostname, e.address, e.port FROM endpoints e \
                 JOIN hosts h ON h.id = e.host_id WHERE e.sni = ''",
            )
            .fetch_all(&pool),
        )
        .expect("read the endpoints");
    let mut stored: HashMap<(String, String, i32), usize> = HashMap::new();
    for row in rows {
        *stored.entry(row).or_default() += 1;
    }
    let duplicates: Vec<_> = stored.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicates.is_empty(),
        "endpoints stored twice: {duplicates:?}"
    );
    let mut lost = Vec::new();
    for &host in &accepted {
        for (address, port) in addresses_of(host, &servers) {
            let key = (hostname(host), address.to_string(), i32::from(port));
            if !stored.contains_key(&key) {
                lost.push(format!("{key:?}"));
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} accepted sockets missing from the store, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(
        stored.len(),
        agents * SOCKETS_PER_HOST,
        "endpoints beyond the reports'"
    );
    let hosts = count(&pool, "SELECT count(*) FROM hosts");
    assert_eq!(hosts, agents as i64, "hosts stored");

    // The probers kept working: every loopback endpoint ends probed (ok), every other one
    // denied, and no port outside the reports was touched.
    let finished = "SELECT count(*) FROM endpoints WHERE sni = '' AND last_probed_at IS NOT NULL \
         AND lease_owner IS NULL";
    let probed_during_load = count(&pool, finished);
    let waited = Instant::now();
    while count(&pool, finished) < (agents * SOCKETS_PER_HOST) as i64 {
        assert!(
            waited.elapsed() < PROBE_LIMIT,
            "probers did not finish: {} of {} endpoints recorded\n{}",
            count(&pool, finished),
            agents * SOCKETS_PER_HOST,
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE sni = '' AND address = '127.0.0.1' \
         AND last_status = 'ok'",
    );
    let denied = count(
        &pool,
        "SELECT count(*) FROM endpoints WHERE sni = '' AND address <> '127.0.0.1' \
         AND last_status = 'denied'",
    );
    eprintln!(
        "load: {probed_during_load} endpoints probed by the end of the load; all {} \
         recorded {:.1} s after it ({ok} ok, {denied} denied)",
        agents * SOCKETS_PER_HOST,
        waited.elapsed().as_secs_f64()
    );
    assert_eq!(ok, agents as i64, "loopback endpoints probed ok");
    assert_eq!(
        denied,
        (agents * (SOCKETS_PER_HOST - 1)) as i64,
        "endpoints outside probe.allow recorded as denied"
    );
    let unprobed: Vec<usize> = (0..agents)
        .filter(|&index| servers.connections(index) == 0)
        .collect();
    assert!(
        unprobed.is_empty(),
        "ports never connected to: {unprobed:?}"
    );
    runtime().block_on(pool.close());
}

/// What the reader saw.
#[derive(Default)]
struct Reads {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, usize>,
}

/// Reads the endpoint and certificate lists, one request after another, until `done`.
fn read_while_loading(address: SocketAddr, done: &AtomicBool, reads: &Mutex<Reads>) {
    let paths = [
        "/api/v1/endpoints?limit=100",
        "/api/v1/certificates?hostname=load.test",
        "/api/v1/certificates?expiring_within=400d",
        "/api/v1/endpoints?app=e2e&limit=50",
    ];
    for path in paths.iter().cycle() {
        if done.load(Ordering::SeqCst) {
            return;
        }
        let sent = Instant::now();
        let answer = Request::get(path).send(address);
        let elapsed = sent.elapsed();
        let status = match answer {
            Ok(response) => response.status.to_string(),
            Err(error) => format!("no answer ({:?})", error.kind()),
        };
        let mut reads = reads.lock().expect("not poisoned");
        reads.latencies.push(elapsed);
        *reads.statuses.entry(status).or_default() += 1;
    }
}

/// `p50 … p95 … p99 … max …` of sorted durations, in milliseconds.
fn percentiles(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "(none)".into();
    }
    let at = |fraction: f64| {
        let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
        sorted[index - 1].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    )
}

fn hostname(host: usize) -> String {
    format!("load-host-{host:05}")
}

/// The host's own address outside `probe.allow`: 10.200.x.y.
fn own_address(host: usize) -> IpAddr {
    let [_, _, high, low] = (host as u32).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(10, 200 + high, low, 1))
}

/// Where each socket of `host` is reachable, and its port.
fn addresses_of(host: usize, servers: &FleetServers) -> Vec<(IpAddr, u16)> {
    let mut addresses = vec![(IpAddr::V4(Ipv4Addr::LOCALHOST), servers.ports[host])];
    addresses.extend((1..SOCKETS_PER_HOST).map(|offset| (own_address(host), 8442 + offset as u16)));
    addresses
}

fn sockets_of(host: usize, servers: &FleetServers) -> Vec<Socket> {
    addresses_of(host, servers)
        .into_iter()
        .map(|(address, port)| Socket {
            address,
            port,
            process: "load",
        })
        .collect()
}

/// All roles; probes to loopback only; 64 probes in flight.
fn write_load_config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let outbox = dir.join("outbox");
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 16\n\n\
         [server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"10s\"\nconcurrency = 64\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        outbox = outbox.display().to_string(),
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the load config");
    path
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?}: not a number")),
        Err(_) => default,
    }
}

/// The last `lines` lines of a log.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
