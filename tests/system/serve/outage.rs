//! Killing PostgreSQL in the middle of ingest and starting it again loses no accepted
//! report: every report answered 202 is in the store afterwards, and while the database
//! is down the service answers 503 with Retry-After (so agents retry), never 500.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use certfleet_store::EndpointFilter;

use super::database::{open_store, runtime};
use super::http::{Request, Response};
use super::private_pg::PrivatePostgres;
use super::process::{create_token, write_config, Service};
use super::reports::{bytes, report, Socket};

const HOSTS: usize = 300;
const SOCKETS_PER_HOST: u16 = 100;
const POSTERS: usize = 6;
/// Bound on each stage of the scenario (a third accepted, refusals seen while down).
const STAGE_LIMIT: Duration = Duration::from_secs(120);

const UP: u8 = 0;
const DOWN: u8 = 1;
const RESTARTED: u8 = 2;

/// What the service answered to one report.
struct Outcome {
    host: usize,
    answer: Result<Response, String>,
    /// The database state when the answer came.
    phase: u8,
}

#[test]
fn killing_postgres_during_ingest_loses_no_accepted_report() {
    let mut postgres = match PrivatePostgres::start() {
        Ok(postgres) => postgres,
        Err(why) => {
            certfleet_testkit::skip(&format!("cannot run a private PostgreSQL here: {why}"));
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = write_config(dir.path(), &postgres.url());
    let service = Service::start(&config, "api");
    let token = create_token(&config, "outage-agent");
    let bodies: Vec<Vec<u8>> = (0..HOSTS)
        .map(|host| bytes(&report(&hostname(host), &sockets_of(host))))
        .collect();

    let next = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let refused_while_down = AtomicUsize::new(0);
    let phase = AtomicU8::new(UP);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..POSTERS {
            scope.spawn(|| loop {
                let host = next.fetch_add(1, Ordering::SeqCst);
                if host >= HOSTS {
                    return;
                }
                let answer = Request::post_json("/api/v1/reports", bodies[host].clone())
                    .bearer(&token)
                    .send(service.address)
                    .map_err(|error| error.to_string());
                let now = phase.load(Ordering::SeqCst);
                match &answer {
                    Ok(response) if response.status == 202 => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    _ if now == DOWN => {
                        refused_while_down.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                let outcome = Outcome {
                    host,
                    answer,
                    phase: now,
                };
                outcomes.lock().expect("not poisoned").push(outcome);
            });
        }
        let posted_all = || next.load(Ordering::SeqCst) >= HOSTS;
        wait_until("a third of the reports accepted", || {
            accepted.load(Ordering::SeqCst) >= HOSTS / 3 || posted_all()
        });
        postgres.kill();
        phase.store(DOWN, Ordering::SeqCst);
        wait_until("three reports refused while PostgreSQL is down", || {
            refused_while_down.load(Ordering::SeqCst) >= 3 || posted_all()
        });
        postgres.restart();
        phase.store(RESTARTED, Ordering::SeqCst);
    });
    let outcomes = outcomes.into_inner().expect("not poisoned");
    let context = || format!("service log:\n{}", service.log());

    // While the database was away: 503 with Retry-After, nothing else.
    let mut wrong = Vec::new();
    for outcome in &outcomes {
        match &outcome.answer {
            Ok(response) if response.status == 202 => {}
            Ok(response) if response.status == 503 && response.header("retry-after").is_some() => {}
            Ok(response) => wrong.push(format!(
                "host {} (phase {}): {} retry-after {:?}",
                outcome.host,
                outcome.phase,
                response.describe(),
                response.header("retry-after")
            )),
            Err(error) => wrong.push(format!("host {}: no answer: {error}", outcome.host)),
        }
    }
    assert!(
        wrong.is_empty(),
        "answers other than 202/503:\n{}\n{}",
        wrong.join("\n"),
        context()
    );
    let refused: Vec<usize> = outcomes
        .iter()
        .filter(|outcome| !matches!(&outcome.answer, Ok(response) if response.status == 202))
        .map(|outcome| outcome.host)
        .collect();
    assert!(
        !refused.is_empty(),
        "no report was refused: PostgreSQL was killed after the ingest ended\n{}",
        context()
    );
    let mut accepted_hosts: Vec<usize> = outcomes
        .iter()
        .filter(|outcome| matches!(&outcome.answer, Ok(response) if response.status == 202))
        .map(|outcome| outcome.host)
        .collect();
    eprintln!(
        "outage: {} reports accepted, {} refused with 503 ({} of them while PostgreSQL was down)",
        accepted_hosts.len(),
        refused.len(),
        refused_while_down.load(Ordering::SeqCst)
    );

    // Every report answered 202 is in the store, whole.
    let store = open_store(&postgres.url());
    let lost = missing_reports(&*store, &accepted_hosts);
    assert!(
        lost.is_empty(),
        "accepted reports missing after the restart:\n{}\n{}\nPostgreSQL log:\n{}",
        lost.join("\n"),
        context(),
        postgres.log()
    );

    // The agents retry the refused reports: now they are accepted too, and everything is in.
    for &host in &refused {
        let answer = Request::post_json("/api/v1/reports", bodies[host].clone())
            .bearer(&token)
            .send(service.address)
            .expect("POST after the restart");
        assert_eq!(
            answer.status,
            202,
            "host {host}: {}\n{}",
            answer.describe(),
            context()
        );
        accepted_hosts.push(host);
    }
    let lost = missing_reports(&*store, &accepted_hosts);
    assert!(lost.is_empty(), "reports missing:\n{}", lost.join("\n"));
    let inventory = runtime().block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, HOSTS as u64, "{inventory:?}");
}

fn hostname(host: usize) -> String {
    format!("outage-host-{host:04}")
}

/// Each host's sockets are reachable at an address of its own, 10.100.x.y.
fn address_of(host: usize) -> IpAddr {
    let [_, _, high, low] = (host as u32).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(10, 100 + high, low, 1))
}

fn sockets_of(host: usize) -> Vec<Socket> {
    (0..SOCKETS_PER_HOST)
        .map(|offset| Socket {
            address: address_of(host),
            port: 8000 + offset,
            process: "java",
        })
        .collect()
}

/// The hosts whose report is not wholly in the store: each should have all its endpoints
/// (those without SNI, one per socket), reported by it.
fn missing_reports(store: &dyn certfleet_store::Store, hosts: &[usize]) -> Vec<String> {
    let mut missing = Vec::new();
    for &host in hosts {
        let filter = EndpointFilter {
            address: Some(address_of(host)),
            // room for endpoints with SNI names too, should the store add any
            limit: 4 * u32::from(SOCKETS_PER_HOST),
            ..EndpointFilter::default()
        };
        let endpoints = runtime()
            .block_on(store.endpoints(&filter))
            .expect("list endpoints");
        let theirs = endpoints
            .iter()
            .filter(|endpoint| endpoint.sni.is_none())
            .filter(|endpoint| endpoint.hostname.as_deref() == Some(hostname(host).as_str()))
            .count();
        if theirs != usize::from(SOCKETS_PER_HOST) {
            missing.push(format!(
                "{}: {theirs} of {SOCKETS_PER_HOST} endpoints",
                hostname(host)
            ));
        }
    }
    missing
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    certfleet_testkit::wait_until(what, STAGE_LIMIT, &String::new, done);
}
