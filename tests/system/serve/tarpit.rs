//! One address with 2,000 tarpit ports (accepted, never answered) must not hold up the rest
//! of the fleet: a real `certfleet serve --roles api,prober` on SQLite gets a report of the
//! tarpit host first, then one of 100 good TLS endpoints on another address. Per-address
//! politeness (`probe.max_per_address`) lets only 16 probes at a time reach the tarpit
//! address, so the tarpit takes minutes to probe; the 100 good endpoints must all be
//! recorded `ok` while most of the tarpit endpoints are still unprobed.
//!
//! Asserted by order, not by time: each poll reads both counts in one statement, and the
//! tarpit count at the moment the last good endpoint is recorded must be under half. How
//! long the good endpoints took is printed (`bench/tarpit.sh`).

use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::database::{runtime, TestDatabase};
use super::fleet_servers::FleetServers;
use super::http::Request;
use super::process::{create_token, Service};
use super::reports::{report, Socket};
use crate::pki::{Pki, Spec};

const TARPIT_PORTS: usize = 2_000;
const GOOD_PORTS: usize = 100;
const TARPIT_ADDRESS: [u8; 4] = [127, 0, 0, 2];
const GOOD_ADDRESS: [u8; 4] = [127, 0, 0, 1];
/// Descriptors beside the listeners: connections of both sides, the database, logs.
const SPARE_DESCRIPTORS: usize = 1_000;
/// Bound on the whole wait (the old worker needed about four minutes); never reached
/// when the prober works.
const WAIT_LIMIT: Duration = Duration::from_secs(900);

#[test]
fn a_tarpit_address_does_not_hold_up_the_rest_of_the_fleet() {
    let tarpit_ports = match descriptor_room() {
        // A listener and an accepted connection per port, at most.
        Some(room) if room >= 2 * TARPIT_PORTS + SPARE_DESCRIPTORS => TARPIT_PORTS,
        room => {
            let ports = room.unwrap_or(0).saturating_sub(SPARE_DESCRIPTORS) / 2;
            if ports < 200 {
                certfleet_testkit::skip(&format!(
                    "open-file limit too low for the tarpit test ({room:?} descriptors)"
                ));
                return;
            }
            eprintln!("tarpit: open-file limit {room:?}: {ports} tarpit ports, not 2,000");
            ports
        }
    };
    let tarpit = Tarpit::start(tarpit_ports);
    let pki = Pki::new();
    let leaf = pki.issue("good", Spec::leaf("good.test", &["good.test"]), None);
    let good = FleetServers::start(GOOD_PORTS, &leaf, usize::MAX);

    let database = TestDatabase::sqlite();
    let config = write_config(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "tarpit-test");
    let started = Instant::now();
    // The tarpit host reports first: its endpoints are due first.
    post(
        &service,
        &token,
        "tarpit-host",
        TARPIT_ADDRESS,
        &tarpit.ports,
    );
    post(&service, &token, "good-host", GOOD_ADDRESS, &good.ports);

    let mut connection = runtime()
        .block_on(
            SqliteConnectOptions::new()
                .filename(database.dir().join("certfleet.db"))
                .read_only(true)
                .connect(),
        )
        .expect("open the service's SQLite file");
    let mut last = Counts::default();
    let took = loop {
        last = counts(&mut connection).unwrap_or(last);
        if last.good_ok + last.good_failed >= GOOD_PORTS as i64 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "the good endpoints were not all recorded: {last:?}\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "tarpit: {GOOD_PORTS} good endpoints recorded in {:.1} s beside {tarpit_ports} tarpit \
         ports on one address ({} tarpit endpoints recorded by then, {} connections accepted)",
        took.as_secs_f64(),
        last.tarpit_recorded,
        tarpit.accepted(),
    );
    assert_eq!(
        last.good_ok,
        GOOD_PORTS as i64,
        "every good endpoint ok: {last:?}\n{}",
        service.log()
    );
    assert!(
        last.tarpit_recorded < tarpit_ports as i64 / 2,
        "the good endpoints waited behind the tarpit: {} of {tarpit_ports} tarpit endpoints \
         were recorded before the last good one ({last:?})",
        last.tarpit_recorded
    );
    runtime().block_on(connection.close()).ok();
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Good endpoints (probed without a name) recorded ok, and otherwise.
    good_ok: i64,
    good_failed: i64,
    /// Tarpit endpoints with any result.
    tarpit_recorded: i64,
}

/// Both counts in one statement, so that they are of the same moment. `None` while the
/// service holds the write lock.
fn counts(connection: &mut SqliteConnection) -> Option<Counts> {
    let good = ip(GOOD_ADDRESS).to_string();
    let tarpit = ip(TARPIT_ADDRESS).to_string();
    let row: (i64, i64, i64) = runtime()
        .block_on(
            sqlx::query_as(
                "SELECT \
                   coalesce(sum(address = $1 AND coalesce(sni, '') = '' \
                       AND last_status = 'ok'), 0), \
                   coalesce(sum(address = $1 AND coalesce(sni, '') = '' \
                       AND last_status IS NOT NULL AND last_status <> 'ok'), 0), \
                   coalesce(sum(address = $2 AND last_probed_at IS NOT NULL), 0) \
                 FROM endpoints",
            )
            .bind(good)
            .bind(tarpit)
            .fetch_one(connection),
        )
        .ok()?;
    Some(Counts {
        good_ok: row.0,
        good_failed: row.1,
        tarpit_recorded: row.2,
    })
}

/// The service's own defaults (256 probes in flight, 16 per address, batches of 500), with
/// a 2 s probe timeout: one tarpit probe holds its slot for 2 s.
fn write_config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let outbox = dir.join("outbox");
    let text = format!(
        "[database]\nurl = {url:?}\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"2s\"\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        outbox = outbox.display().to_string(),
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the config");
    path
}

fn post(service: &Service, token: &str, host: &str, address: [u8; 4], ports: &[u16]) {
    let sockets: Vec<Socket> = ports
        .iter()
        .map(|port| Socket {
            address: ip(address),
            port: *port,
            process: "svc",
        })
        .collect();
    let body = serde_json::to_vec(&report(host, &sockets)).expect("JSON");
    let answer = Request::post_json("/api/v1/reports", body)
        .bearer(token)
        .send(service.address)
        .expect("POST the report");
    assert_eq!(answer.status, 202, "{}", answer.describe());
}

fn ip(address: [u8; 4]) -> IpAddr {
    IpAddr::from(address)
}

/// The soft open-file limit, from `/proc/self/limits` (the service inherits it).
fn descriptor_room() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(usize::MAX);
    }
    soft.parse().ok()
}

/// Listeners on the tarpit address that accept every connection and never write: each
/// accepted connection is kept open until the test ends.
struct Tarpit {
    ports: Vec<u16>,
    held: Arc<Mutex<Vec<tokio::net::TcpStream>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tarpit {
    fn start(count: usize) -> Tarpit {
        let held = Arc::new(Mutex::new(Vec::new()));
        let _runtime = tarpit_runtime().enter();
        let mut ports = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = StdListener::bind(SocketAddr::from((TARPIT_ADDRESS, 0)))
                .expect("bind a port on 127.0.0.2");
            listener.set_nonblocking(true).expect("non-blocking");
            ports.push(listener.local_addr().expect("bound").port());
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let held = held.clone();
            tasks.push(tarpit_runtime().spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    held.lock().unwrap_or_else(|p| p.into_inner()).push(stream);
                }
            }));
        }
        Tarpit { ports, held, tasks }
    }

    /// Connections accepted so far.
    fn accepted(&self) -> usize {
        self.held.lock().map(|held| held.len()).unwrap_or(0)
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn tarpit_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the tarpit")
    })
}
