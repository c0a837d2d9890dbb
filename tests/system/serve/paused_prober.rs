//! A prober that wakes up after its lease expired must not overwrite a newer result. Two
//! `certfleet serve --roles prober` processes on one PostgreSQL database, and 20 loopback
//! TLS ports that present an "old" certificate to the first connection (held until the
//! test releases it) and a "new" one to every later connection:
//!
//! 1. prober A (leases of 3 s) leases the 20 endpoints and connects: its handshakes wait;
//! 2. A is frozen (SIGSTOP, as a VM pause), and the held handshakes are released (the old
//!    certificate waits in A's socket buffers);
//! 3. once A's leases have expired, prober B leases the endpoints and records the new
//!    certificate;
//! 4. A is woken (SIGCONT): it finishes its handshakes with the old certificate and tries
//!    to record them.
//!
//! A's results are stale: every endpoint keeps B's result (new certificate, B's probe
//! time), no observation of the old certificate is written, and A says how many it
//! dropped. No timers: each step waits for what the previous one must have caused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certfleet_store::AgentName;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::database::{count, open_store, runtime, TestDatabase};
use super::fleet_servers::server_config;
use super::process::Service;
use super::reports::{report, Socket};
use crate::pki::{Cert, Pki, Spec};

const PORTS: usize = 20;
/// Bound on each step; never reached when things work.
const STEP_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn a_prober_woken_after_its_lease_expired_does_not_overwrite_a_newer_result() {
    let database = TestDatabase::postgres();
    let store = open_store(&database.url);
    runtime()
        .block_on(store.migrate())
        .expect("migrate the test database");
    let pool = runtime()
        .block_on(PgPool::connect(&database.url))
        .expect("connect to the test database");
    let pki = Pki::new();
    let old = pki.issue("old", Spec::leaf("old.test", &["old.test"]), None);
    let new = pki.issue("new", Spec::leaf("new.test", &["new.test"]), None);
    let servers = TwoFaceServers::start(PORTS, &old, &new);
    let sockets: Vec<Socket> = servers
        .ports
        .iter()
        .map(|port| Socket {
            address: [127, 0, 0, 1].into(),
            port: *port,
            process: "svc",
        })
        .collect();
    let report = serde_json::from_value(report("paused-host", &sockets)).expect("a report");
    let agent = AgentName::new("paused").expect("an agent name");
    runtime()
        .block_on(store.ingest_report(&agent, &report))
        .expect("ingest the report");

    let prober_a = Service::start_in_background(&prober_config(&database, "a", "3s"), "prober");
    let log_a = || prober_a.log();
    wait_until("prober A connected to every port", &log_a, || {
        servers.first_connections() == PORTS
    });
    let owner_a = format!("{}/{}", hostname(), prober_a.pid());
    let leased_by_a = format!(
        "SELECT count(*) FROM endpoints WHERE lease_owner = '{owner_a}' AND coalesce(sni, '') = ''"
    );
    assert_eq!(count(&pool, &leased_by_a), PORTS as i64, "{}", log_a());
    prober_a.freeze();
    servers.release_first();
    wait_until("prober A's leases expired", &log_a, || {
        count(
            &pool,
            &format!("{leased_by_a} AND lease_until < now() - interval '1 second'"),
        ) == PORTS as i64
    });

    let prober_b = Service::start_in_background(&prober_config(&database, "b", "5m"), "prober");
    let new_everywhere = format!(
        "SELECT count(*) FROM endpoints WHERE coalesce(sni, '') = '' AND last_status = 'ok' \
         AND leaf_sha256 = '{}' AND lease_owner IS NULL",
        new.sha256
    );
    wait_until(
        "prober B recorded the new certificate",
        &|| prober_b.log(),
        || count(&pool, &new_everywhere) == PORTS as i64,
    );
    let probed_by_b = probe_times(&pool);

    prober_a.resume();
    wait_until("prober A tried to record its 20 results", &log_a, || {
        probed_in(&prober_a.log()) >= PORTS as u64
    });
    // A records nothing more after this point: its only results were the stale ones.
    assert_eq!(
        count(&pool, &new_everywhere),
        PORTS as i64,
        "a stale result overwrote a newer one; prober A's log:\n{}",
        log_a()
    );
    assert_eq!(probe_times(&pool), probed_by_b, "probe times moved back");
    let old_observations = format!(
        "SELECT count(*) FROM observations WHERE leaf_sha256 = '{}'",
        old.sha256
    );
    assert_eq!(
        count(&pool, &old_observations),
        0,
        "observations of stale results"
    );
    let log = log_a();
    assert_eq!(
        stale_in(&log),
        PORTS as u64,
        "prober A says what it dropped:\n{log}"
    );
    eprintln!(
        "paused prober: {PORTS} stale results of A dropped, B's kept; A's log:\n{}",
        log.lines()
            .filter(|line| line.contains("stale"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(prober_b);
    runtime().block_on(pool.close());
}

/// The JSON log lines (fields at the top level) with `message`.
fn events<'a>(log: &'a str, message: &'a str) -> impl Iterator<Item = serde_json::Value> + 'a {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(move |line| line["message"] == message)
}

/// Results in the prober's `probe round recorded` lines (written or found stale).
fn probed_in(log: &str) -> u64 {
    events(log, "probe round recorded")
        .map(|fields| fields["probed"].as_u64().unwrap_or(0))
        .sum()
}

/// Results the prober said it dropped as stale.
fn stale_in(log: &str) -> u64 {
    events(
        log,
        "stale probe results dropped: their leases ended or passed to another prober",
    )
    .map(|fields| fields["stale"].as_u64().unwrap_or(0))
    .sum()
}

/// Probe time of each endpoint probed without a name, by id.
fn probe_times(pool: &PgPool) -> Vec<(i64, String)> {
    runtime()
        .block_on(
            sqlx::query_as(
                "SELECT id, last_probed_at::text FROM endpoints \
                 WHERE coalesce(sni, '') = '' ORDER BY id",
            )
            .fetch_all(pool),
        )
        .expect("read the probe times")
}

/// A prober with long probes (A's handshakes wait as long as the test needs) and room for
/// every endpoint at once.
fn prober_config(database: &TestDatabase, name: &str, lease: &str) -> std::path::PathBuf {
    let dir = database.dir().join(format!("prober-{name}"));
    std::fs::create_dir_all(&dir).expect("create the prober's folder");
    let text = format!(
        "[database]\nurl = {url:?}\nmax_connections = 4\n\n\
         [probe]\nallow = [\"127.0.0.0/8\"]\ntimeout = \"100s\"\nconcurrency = 64\n\
         batch = 100\nlease = {lease:?}\nmax_per_address = 64\n\n[log]\nformat = \"json\"\n",
        url = database.url
    );
    let path = dir.join("certfleet.toml");
    std::fs::write(&path, text).expect("write the prober config");
    path
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "prober".into())
}

fn wait_until(what: &str, context: &dyn Fn() -> String, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, STEP_LIMIT, context, done);
}

/// TLS listeners on 127.0.0.1: the first connection to each port is held until
/// [`release_first`](Self::release_first), then served the old certificate; every later
/// connection is served the new one at once.
struct TwoFaceServers {
    ports: Vec<u16>,
    first: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl TwoFaceServers {
    fn start(count: usize, old: &Cert, new: &Cert) -> TwoFaceServers {
        let old = TlsAcceptor::from(Arc::new(server_config(old)));
        let new = TlsAcceptor::from(Arc::new(server_config(new)));
        let first = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let _runtime = servers_runtime().enter();
        let mut ports = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
            listener.set_nonblocking(true).expect("non-blocking");
            ports.push(listener.local_addr().expect("bound").port());
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let (old, new, first, released) =
                (old.clone(), new.clone(), first.clone(), released.clone());
            tasks.push(servers_runtime().spawn(async move {
                let mut nth = 0;
                while let Ok((stream, _)) = listener.accept().await {
                    nth += 1;
                    let acceptor = if nth == 1 { old.clone() } else { new.clone() };
                    let mut released = released.clone();
                    if nth == 1 {
                        first.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::spawn(async move {
                        if nth == 1 {
                            let _ = released.wait_for(|released| *released).await;
                        }
                        let handshake = acceptor.accept(stream);
                        let _ = tokio::time::timeout(Duration::from_secs(300), handshake).await;
                    });
                }
            }));
        }
        TwoFaceServers {
            ports,
            first,
            release,
            tasks,
        }
    }

    /// Ports whose first connection has arrived.
    fn first_connections(&self) -> usize {
        self.first.load(Ordering::SeqCst)
    }

    fn release_first(&self) {
        let _ = self.release.send(true);
    }
}

impl Drop for TwoFaceServers {
    fn drop(&mut self) {
        self.release_first();
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn servers_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the servers")
    })
}
