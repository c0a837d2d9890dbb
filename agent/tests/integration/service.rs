//! `certfleet agent` against a running `certfleet serve` (SQLite): one cycle delivers;
//! while the service is down reports wait in the spool, and they are delivered, oldest
//! first, when it is back; a wrong token keeps the report; `--print` sends nothing.

use std::net::{IpAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use certfleet_model::AgentReport;
use certfleet_store::{EndpointFilter, Store, StoreOptions};

use crate::support::{create_token, database_url, run_agent, write_service_config, Service};

/// Fast retries, so that a test with the service down takes a second, not minutes.
const IMPATIENT: [(&str, &str); 3] = [
    ("CERTFLEET_AGENT__RETRY_ATTEMPTS", "2"),
    ("CERTFLEET_AGENT__RETRY_BACKOFF", "20ms"),
    ("CERTFLEET_AGENT__TIMEOUT", "5s"),
];

fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .expect("comm")
        .trim()
        .to_owned()
}

fn open_store(dir: &Path) -> (tokio::runtime::Runtime, Arc<dyn Store>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = runtime
        .block_on(certfleet_store::connect(
            &database_url(dir),
            StoreOptions::default(),
        ))
        .expect("open the service's database");
    (runtime, store)
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("report-"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn one_cycle_delivers_the_hosts_listeners_to_the_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_service_config(dir.path(), "127.0.0.0/8");
    let token = create_token(&config);
    let service = Service::start(&config, "api", "127.0.0.1:0");
    let listener = TcpListener::bind("0.0.0.0:0").expect("a wildcard listener");
    let port = listener.local_addr().expect("address").port();
    let spool = dir.path().join("spool");
    let spool_arg = spool.to_str().expect("UTF-8");
    let url = service.url();
    let args = [
        "--once",
        "--server",
        &url,
        "--token",
        &token,
        "--spool-dir",
        spool_arg,
        "--tag",
        "app=agent-e2e",
        "--tag",
        "env=test,owner=team@example.com",
    ];
    let run = run_agent(&args, &[]);
    assert!(
        run.status.success(),
        "agent failed:\n{}\nservice:\n{}",
        run.stderr,
        service.log()
    );
    assert_eq!(spooled(&spool), 0);
    assert!(run.stderr.contains("report delivered"), "{}", run.stderr);

    let (runtime, store) = open_store(dir.path());
    let inventory = runtime.block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 1);
    let filter = EndpointFilter {
        port: Some(port),
        ..EndpointFilter::default()
    };
    let endpoints = runtime
        .block_on(store.endpoints(&filter))
        .expect("endpoints");
    let host_has_addresses = endpoints
        .iter()
        .any(|e| e.address.parse::<IpAddr>().is_ok_and(|a| !a.is_loopback()));
    if endpoints.is_empty() {
        eprintln!("this host has no non-loopback address: no endpoint to check for :{port}");
        return;
    }
    assert!(host_has_addresses, "{endpoints:?}");
    for endpoint in &endpoints {
        assert_eq!(endpoint.process, Some(own_comm()));
        assert_eq!(endpoint.tags.app.as_deref(), Some("agent-e2e"));
        assert_eq!(endpoint.tags.owner.as_deref(), Some("team@example.com"));
    }
}

#[test]
fn reports_wait_in_the_spool_while_the_service_is_down_and_arrive_when_it_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_service_config(dir.path(), "127.0.0.0/8");
    let token = create_token(&config);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let spool_arg = spool.to_str().expect("UTF-8");
    let args = [
        "--once",
        "--server",
        &url,
        "--token",
        &token,
        "--spool-dir",
        spool_arg,
    ];

    for expected in 1..=2 {
        let run = run_agent(&args, &IMPATIENT);
        assert_eq!(
            run.status.code(),
            Some(1),
            "undelivered is exit 1:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("retrying"), "{}", run.stderr);
        assert_eq!(spooled(&spool), expected, "{}", run.stderr);
    }

    let service = Service::start(&config, "api", &format!("127.0.0.1:{port}"));
    let run = run_agent(&args, &IMPATIENT);
    assert!(
        run.status.success(),
        "agent failed:\n{}\nservice:\n{}",
        run.stderr,
        service.log()
    );
    assert_eq!(spooled(&spool), 0, "the spool is drained");
    assert_eq!(
        run.stderr.matches("report delivered").count(),
        3,
        "{}",
        run.stderr
    );
    let (runtime, store) = open_store(dir.path());
    let inventory = runtime.block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 1, "three reports of one host");
}

#[test]
fn a_wrong_token_is_refused_and_the_report_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_service_config(dir.path(), "127.0.0.0/8");
    let _token = create_token(&config);
    let service = Service::start(&config, "api", "127.0.0.1:0");
    let spool = dir.path().join("spool");
    let spool_arg = spool.to_str().expect("UTF-8");
    let url = service.url();
    let args = [
        "--once",
        "--server",
        &url,
        "--token",
        "not-a-token",
        "--spool-dir",
        spool_arg,
    ];
    let run = run_agent(&args, &IMPATIENT);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("retrying"),
        "a 401 is not retried: {}",
        run.stderr
    );
    assert_eq!(spooled(&spool), 1, "kept until the token is fixed");
}

#[test]
fn print_writes_the_contract_json_and_sends_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let port = listener.local_addr().expect("address").port();
    let run = run_agent(&["--print", "--tag", "app=printed"], &[]);
    assert!(run.status.success(), "{}", run.stderr);
    let report: AgentReport = serde_json::from_str(&run.stdout).expect("the contract's JSON");
    assert_eq!(report.validate(), Ok(()));
    assert_eq!(report.tag("app"), Some("printed"));
    let ours = report
        .sockets
        .iter()
        .find(|s| s.port == port && s.address.is_loopback())
        .expect("the test's own listener");
    assert_eq!(ours.process, Some(own_comm()));
    assert_eq!(ours.scope, certfleet_model::SocketScope::Loopback);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert!(json["visibility"]["processes"].as_u64() > Some(0));
}
