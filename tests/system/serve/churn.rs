//! Sockets that change hands and names that follow their owner, against a real `serve`
//! (issue 14, problems 4 and 5), on SQLite and PostgreSQL. The report window is 3 s here
//! (`retention.report_window`), so that "host A stopped reporting" takes seconds.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::database::TestDatabase;
use super::http::Request;
use super::process::{create_token, write_config, Service};
use super::reports::{endpoints_at, post_report, report, Socket};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LIMIT: Duration = Duration::from_secs(40);

fn config_with_short_window(dir: &Path, url: &str) -> std::path::PathBuf {
    let config = write_config(dir, url);
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    text.push_str("\n[retention]\nreport_window = \"3s\"\n");
    std::fs::write(&config, text).expect("write the config");
    config
}

fn owned(hostname: &str, owner: &str, port: u16) -> Value {
    let mut report = report(
        hostname,
        &[Socket {
            address: LOOPBACK,
            port,
            process: "java",
        }],
    );
    report["host"]["tags"]["owner"] = json!(owner);
    report
}

#[test]
fn a_socket_another_host_takes_over_starts_afresh_on_sqlite() {
    takeover(TestDatabase::sqlite());
}

#[test]
fn a_socket_another_host_takes_over_starts_afresh_on_postgres() {
    takeover(TestDatabase::postgres());
}

/// Host A's workload serves a certificate; A stops, and host B's new workload takes the
/// address and port over (it answers nothing yet): the endpoint becomes B's without A's
/// certificate, is probed at once, and B is never mailed about A's certificate.
fn takeover(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let leaf = pki.issue(
        "tenant-a",
        Spec::leaf("tenant-a.test", &["tenant-a.test"])
            .valid(time::Duration::days(-100), time::Duration::days(10)),
        None,
    );
    let server = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start A's TLS server");
    let port = server.port;
    let config = config_with_short_window(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "churn-agent");
    let answer = post_report(&service, &token, &owned("host-a", "a@example.com", port));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    certfleet_testkit::wait_until(
        &format!("{kind}: A's certificate recorded"),
        LIMIT,
        &|| service.log(),
        || {
            endpoints_at(&service, port).iter().any(|e| {
                e["sni"].is_null() && e["observation"]["leaf_sha256"] == json!(leaf.sha256)
            })
        },
    );
    // B claims at once: a conflict while A is live.
    let answer = post_report(&service, &token, &owned("host-b", "b@example.com", port));
    assert_eq!(
        answer.json()["conflicts"],
        1,
        "{kind}: {}",
        answer.describe()
    );
    // A's workload is gone; once A has not reported for the window, B's report takes over.
    drop(server);
    certfleet_testkit::wait_until(
        &format!("{kind}: B takes the socket over"),
        LIMIT,
        &|| service.log(),
        || {
            let answer = post_report(&service, &token, &owned("host-b", "b@example.com", port));
            answer.status == 202 && answer.json()["conflicts"] == 0
        },
    );
    for endpoint in endpoints_at(&service, port) {
        assert_eq!(endpoint["owner"], "b@example.com", "{kind}: {endpoint}");
        assert_eq!(endpoint["hostname"], "host-b", "{kind}: {endpoint}");
        assert!(
            endpoint["observation"].is_null(),
            "{kind}: A's certificate is not B's: {endpoint}"
        );
    }
    let socket = endpoints_at(&service, port)
        .into_iter()
        .find(|e| e["sni"].is_null())
        .expect("the socket");
    let id = socket["id"].as_i64().expect("an id");
    // Probed at once for its new tenant (nothing answers now), and its history still shows
    // what A's workload served.
    certfleet_testkit::wait_until(
        &format!("{kind}: the socket probed for B"),
        LIMIT,
        &|| service.log(),
        || {
            let detail = Request::get(&format!("/api/v1/endpoints/{id}"))
                .send(service.address)
                .expect("GET the endpoint")
                .json();
            detail["last_status"] == "refused" || detail["last_status"] == "timeout"
        },
    );
    let detail = Request::get(&format!("/api/v1/endpoints/{id}"))
        .send(service.address)
        .expect("GET the endpoint")
        .json();
    assert_eq!(
        detail["history"][0]["leaf_sha256"],
        json!(leaf.sha256),
        "{kind}: {detail}"
    );
    let expiring = Request::get("/api/v1/certificates?expiring_within=30d")
        .send(service.address)
        .expect("GET expiring")
        .json();
    assert_eq!(
        expiring["items"],
        json!([]),
        "{kind}: A's certificate is no longer served, so nobody is mailed about it"
    );
}

#[test]
fn names_follow_their_sockets_owner_on_sqlite() {
    names_follow(TestDatabase::sqlite());
}

#[test]
fn names_follow_their_sockets_owner_on_postgres() {
    names_follow(TestDatabase::postgres());
}

/// A certificate's name becomes a named endpoint under the socket; when the host's owner
/// tag changes, the name's owner changes with the socket's, at once.
fn names_follow(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let leaf = pki.issue("named", Spec::leaf("named.test", &["named.test"]), None);
    let server = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = config_with_short_window(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "names-agent");
    let answer = post_report(&service, &token, &owned("host-n", "old@example.com", port));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    certfleet_testkit::wait_until(
        &format!("{kind}: the certificate's name presented"),
        LIMIT,
        &|| service.log(),
        || {
            endpoints_at(&service, port)
                .iter()
                .any(|e| e["sni"] == "named.test")
        },
    );
    let answer = post_report(&service, &token, &owned("host-n", "new@example.com", port));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    for endpoint in endpoints_at(&service, port) {
        assert_eq!(endpoint["owner"], "new@example.com", "{kind}: {endpoint}");
    }
}

#[test]
fn a_dead_workload_no_longer_serves_its_certificate_on_sqlite() {
    dead_workload(TestDatabase::sqlite());
}

#[test]
fn a_dead_workload_no_longer_serves_its_certificate_on_postgres() {
    dead_workload(TestDatabase::postgres());
}

/// A workload whose certificate expires in 10 days stops: its host no longer reports the
/// socket and the probes fail. After two failures the certificate is no longer "served":
/// not in the expiring list (so no "still served" mail), no current observation. Reported
/// again, the socket is due at once.
fn dead_workload(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let leaf = pki.issue(
        "dying",
        Spec::leaf("dying.test", &["dying.test"])
            .valid(time::Duration::days(-100), time::Duration::days(10)),
        None,
    );
    let server = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = config_with_short_window(database.dir(), &database.url);
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    // Probed every 2 s, retried after 1 s: the test does not wait a day for the probes.
    text = text.replace(
        "[probe]\n",
        "[probe]\ninterval = \"2s\"\nretry_after = \"1s\"\npresent_names = false\n",
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "dying-agent");
    let answer = post_report(&service, &token, &owned("host-d", "d@example.com", port));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    let expiring = || {
        Request::get("/api/v1/certificates?expiring_within=30d")
            .send(service.address)
            .expect("GET expiring")
            .json()["items"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    certfleet_testkit::wait_until(
        &format!("{kind}: the certificate served"),
        LIMIT,
        &|| service.log(),
        || expiring() == 1,
    );
    // The workload stops and its host no longer reports the socket.
    drop(server);
    let socket = endpoints_at(&service, port).remove(0);
    let id = socket["id"].as_i64().expect("an id");
    certfleet_testkit::wait_until(
        &format!("{kind}: two failed probes, no longer served"),
        LIMIT,
        &|| service.log(),
        || {
            let detail = Request::get(&format!("/api/v1/endpoints/{id}"))
                .send(service.address)
                .expect("GET the endpoint")
                .json();
            detail["failures"].as_u64().unwrap_or(0) >= 2 && detail["observation"].is_null()
        },
    );
    assert_eq!(
        expiring(),
        0,
        "{kind}: a dead workload's certificate is not served"
    );
    let answer = post_report(&service, &token, &owned("host-d", "d@example.com", port));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    let detail = Request::get(&format!("/api/v1/endpoints/{id}"))
        .send(service.address)
        .expect("GET the endpoint")
        .json();
    let due = time::OffsetDateTime::parse(
        detail["next_probe_at"].as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(
        due <= time::OffsetDateTime::now_utc(),
        "{kind}: reported again, it is due at once: {detail}"
    );
}

#[test]
fn containers_get_their_own_owners_on_sqlite() {
    containers(TestDatabase::sqlite());
}

#[test]
fn containers_get_their_own_owners_on_postgres() {
    containers(TestDatabase::postgres());
}

/// One container host, two containers with their own tags (as the agent reads them from
/// the runtime's state): each container's socket gets its own owner, the host's socket the
/// host's.
fn containers(database: TestDatabase) {
    let kind = database.kind();
    let config = config_with_short_window(database.dir(), &database.url);
    let service = Service::start(&config, "api");
    let token = create_token(&config, "containers-agent");
    let sockets: Vec<Socket> = [44401, 44402, 44403]
        .into_iter()
        .map(|port| Socket {
            address: LOOPBACK,
            port,
            process: "java",
        })
        .collect();
    let mut report = report("container-host", &sockets);
    report["host"]["tags"]["owner"] = json!("platform@example.com");
    report["sockets"][0]["container"] = json!("0123abcd");
    report["sockets"][0]["tags"] =
        json!({"owner": "billing@example.com", "app": "billing", "namespace": "pay"});
    report["sockets"][1]["container"] = json!("4567ef01");
    report["sockets"][1]["tags"] = json!({"owner": "search@example.com", "app": "search"});
    let answer = post_report(&service, &token, &report);
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    for (port, owner, app) in [
        (44401, "billing@example.com", "billing"),
        (44402, "search@example.com", "search"),
        (44403, "platform@example.com", "e2e"),
    ] {
        let endpoint = endpoints_at(&service, port).remove(0);
        assert_eq!(endpoint["owner"], owner, "{kind}: {endpoint}");
        assert_eq!(endpoint["app"], app, "{kind}: {endpoint}");
    }
}
