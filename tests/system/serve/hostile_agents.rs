//! Hostile agents and hostile servers against a real `certfleet serve` (issue 13), on
//! SQLite and PostgreSQL: a certificate with a NUL and a CR LF in its SANs beside good
//! endpoints, a second host claiming a live endpoint, a report from the future, a token
//! bound to another host, foreign `reachable` addresses, and revoked tokens.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::database::TestDatabase;
use super::http::{Request, Response};
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{endpoints_at, gzip, post_report, report, Socket};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

const REPORTS: &str = "/api/v1/reports";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on waiting for the service's own prober and scheduler (each looks every second).
const LIMIT: Duration = Duration::from_secs(30);

fn get(service: &Service, path: &str) -> Value {
    let answer = Request::get(path)
        .send(service.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.describe());
    answer.json()
}

/// The unnamed endpoint at 127.0.0.1:`port`.
fn endpoint(service: &Service, port: u16) -> Option<Value> {
    endpoints_at(service, port)
        .into_iter()
        .find(|item| item["sni"].is_null())
}

/// Appends `lines` to the `[notify]` section, the last one `write_config` writes.
fn with_notify(config: &Path, lines: &str) {
    let mut text = std::fs::read_to_string(config).expect("read the config");
    text.push_str(lines);
    std::fs::write(config, text).expect("write the config");
}

// --- 1. A hostile certificate beside good endpoints ------------------------------------

#[test]
fn a_nul_san_certificate_beside_good_endpoints_costs_nothing_on_sqlite() {
    hostile_certificate_beside_good_endpoints(TestDatabase::sqlite());
}

#[test]
fn a_nul_san_certificate_beside_good_endpoints_costs_nothing_on_postgres() {
    hostile_certificate_beside_good_endpoints(TestDatabase::postgres());
}

fn hostile_certificate_beside_good_endpoints(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let hostile_sans = ["a\0b.test", "forged.test\r\nBcc: victim@example.com"];
    let hostile = pki.issue(
        "hostile",
        Spec::leaf("hostile.test", &hostile_sans)
            .valid(time::Duration::days(-100), time::Duration::days(10)),
        None,
    );
    let hostile_server = TlsServer::serving(&[&hostile], &hostile)
        .start()
        .expect("start the hostile TLS server");
    let good: Vec<TlsServer> = (0..7)
        .map(|index| {
            let name = format!("good{index}.test");
            let leaf = pki.issue(&name, Spec::leaf(&name, &[name.as_str()]), None);
            TlsServer::serving(&[&leaf], &leaf)
                .start()
                .expect("start a good TLS server")
        })
        .collect();
    let config = write_config(database.dir(), &database.url);
    with_notify(&config, "interval = \"1s\"\n");
    let service = Service::start(&config, "api,prober,scheduler");
    let token = create_token(&config, "hostile-cert-agent");
    let mut sockets: Vec<Socket> = good
        .iter()
        .map(|server| Socket {
            address: LOOPBACK,
            port: server.port,
            process: "good",
        })
        .collect();
    sockets.push(Socket {
        address: LOOPBACK,
        port: hostile_server.port,
        process: "hostile",
    });
    let answer = post_report(&service, &token, &report("mixed-host", &sockets));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());

    // Every one of the eight is recorded, the hostile one with its SANs escaped.
    let mut ports: Vec<u16> = good.iter().map(|server| server.port).collect();
    ports.push(hostile_server.port);
    certfleet_testkit::wait_until(
        &format!("{kind}: all eight endpoints probed ok"),
        LIMIT,
        &|| service.log(),
        || {
            ports
                .iter()
                .all(|port| endpoint(&service, *port).is_some_and(|e| e["last_status"] == "ok"))
        },
    );
    let detail = get(
        &service,
        &format!("/api/v1/certificates/{}", hostile.sha256),
    );
    let sans = detail["sans"].clone();
    assert_eq!(
        sans,
        json!(["a\\00b.test", "forged.test\\0d\\0aBcc: victim@example.com"]),
        "{kind}: {detail}"
    );

    // The digest about the hostile certificate (10 days left) names it on one line: the
    // CR LF in its SAN forges no header and no line.
    let outbox = database.dir().join("outbox");
    let mut mails = Vec::new();
    certfleet_testkit::wait_until(
        &format!("{kind}: a digest about the hostile certificate"),
        LIMIT,
        &|| service.log(),
        || {
            mails = eml_files(&outbox);
            mails.iter().any(|mail| mail.contains("hostile.test"))
        },
    );
    let hostile_mail = mails
        .iter()
        .find(|mail| mail.contains("hostile.test"))
        .expect("the digest");
    // server.base_url left at its default: the links name where the service answers.
    assert!(
        hostile_mail.contains(&format!("http://{}/certificates/", service.address)),
        "{kind}: the digest links to another address:\n{hostile_mail}"
    );
    for mail in &mails {
        assert!(
            !mail.lines().any(|line| line.starts_with("Bcc:")),
            "{kind}: a SAN forged a header:\n{mail}"
        );
        for line in mail.lines() {
            assert!(
                !line.trim_start().starts_with("Bcc: victim"),
                "{kind}: a SAN forged a line:\n{mail}"
            );
        }
    }
}

fn eml_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .collect()
}

// --- 2-6. Agents that speak for others ---------------------------------------------------

#[test]
fn agents_speak_only_for_their_own_host_on_sqlite() {
    agents_speak_only_for_their_own_host(TestDatabase::sqlite());
}

#[test]
fn agents_speak_only_for_their_own_host_on_postgres() {
    agents_speak_only_for_their_own_host(TestDatabase::postgres());
}

fn agents_speak_only_for_their_own_host(database: TestDatabase) {
    let kind = database.kind();
    let config = write_config(database.dir(), &database.url);
    // The api role alone: nothing probes, the endpoints are only as reported.
    let service = Service::start(&config, "api");
    let config_arg = config.to_str().expect("UTF-8 path");
    let token_a = bound_token(config_arg, "host-a", "machine-host-a");
    let token_b = bound_token(config_arg, "host-b", "machine-host-b");
    let socket = [Socket {
        address: LOOPBACK,
        port: 44301,
        process: "java",
    }];
    let mut report_a = report("host-a", &socket);
    report_a["host"]["tags"]["owner"] = json!("owner-a@example.com");
    let answer = post_report(&service, &token_a, &report_a);
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());

    // A token bound to host A cannot report host B: 403, naming the field.
    let answer = post_report(&service, &token_a, &report("host-b", &socket));
    assert_eq!(answer.status, 403, "{kind}: {}", answer.describe());
    assert_eq!(answer.json()["field"], "host.machine_id");

    // Host B claims A's live endpoint: kept as a conflict, A keeps it.
    let mut report_b = report("host-b", &socket);
    report_b["host"]["tags"]["owner"] = json!("attacker@example.com");
    let answer = post_report(&service, &token_b, &report_b);
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    assert_eq!(
        answer.json()["conflicts"],
        1,
        "{kind}: {}",
        answer.describe()
    );
    let claimed = endpoint(&service, 44301).expect("the endpoint");
    assert_eq!(claimed["owner"], "owner-a@example.com", "{kind}: {claimed}");
    assert_eq!(claimed["hostname"], "host-a", "{kind}: {claimed}");
    let id = claimed["id"].as_i64().expect("an id");
    let detail = get(&service, &format!("/api/v1/endpoints/{id}"));
    assert_eq!(
        detail["conflicts"][0]["hostname"], "host-b",
        "{kind}: {detail}"
    );
    let page = Request::get(&format!("/endpoints/{id}"))
        .send(service.address)
        .expect("GET the endpoint page");
    let page = String::from_utf8_lossy(&page.body);
    assert!(
        page.contains("Conflicting claims") && page.contains("machine-host-b"),
        "{kind}: the endpoint page shows the claim:\n{page}"
    );
    let metrics = Request::get("/metrics")
        .send(service.address)
        .expect("GET /metrics")
        .body;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("certfleet_endpoint_conflicts 1"),
        "{kind}: no conflict gauge:\n{metrics}"
    );

    // An operator settles it: dismissed, the claim is gone and A keeps the endpoint.
    let settle = certfleet(&[
        "settle",
        "--config",
        config_arg,
        &id.to_string(),
        "--dismiss",
    ])
    .output()
    .expect("run certfleet settle");
    assert!(settle.status.success(), "{kind}: {settle:?}");
    let detail = get(&service, &format!("/api/v1/endpoints/{id}"));
    assert_eq!(detail["conflicts"], json!([]), "{kind}: {detail}");
    assert_eq!(detail["owner"], "owner-a@example.com", "{kind}: {detail}");

    // Foreign reachable addresses: 400 naming the field.
    let mut foreign = report("host-a", &socket);
    foreign["sockets"][0]["reachable"] = json!(["10.200.0.9"]);
    let answer = post_report(&service, &token_a, &foreign);
    assert_eq!(answer.status, 400, "{kind}: {}", answer.describe());
    assert_eq!(answer.json()["field"], "sockets[0].reachable[0]");

    // A report from the future is refused, and the host's honest reports still count.
    let mut future = report("host-a", &socket);
    future["collected_at"] = json!("9999-12-31T00:00:00Z");
    future["host"]["tags"]["owner"] = json!("frozen@example.com");
    let answer = post_report(&service, &token_a, &future);
    assert_eq!(answer.status, 400, "{kind}: {}", answer.describe());
    assert_eq!(answer.json()["field"], "collected_at");
    let mut honest = report("host-a", &socket);
    honest["collected_at"] = json!(later(2));
    honest["host"]["tags"]["owner"] = json!("new-owner@example.com");
    let answer = post_report(&service, &token_a, &honest);
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    let now_owned = endpoint(&service, 44301).expect("the endpoint");
    assert_eq!(
        now_owned["owner"], "new-owner@example.com",
        "{kind}: {now_owned}"
    );

    // Revoked: 401 from the next request on; listed as revoked.
    let revoke = certfleet(&["token", "revoke", "--config", config_arg, "host-a"])
        .output()
        .expect("run certfleet token revoke");
    assert!(revoke.status.success(), "{kind}: {revoke:?}");
    let answer = post_report(&service, &token_a, &report("host-a", &socket));
    assert_eq!(answer.status, 401, "{kind}: {}", answer.describe());
    let list = certfleet(&["token", "list", "--config", config_arg])
        .output()
        .expect("run certfleet token list");
    let listed = String::from_utf8_lossy(&list.stdout);
    let line_a = listed
        .lines()
        .find(|line| line.starts_with("host-a "))
        .unwrap_or_else(|| panic!("{kind}: host-a not listed:\n{listed}"));
    assert!(
        line_a.contains("machine-host-a") && !line_a.trim_end().ends_with('-'),
        "{kind}: host-a is bound and revoked: {line_a}"
    );
    assert!(
        !listed.contains("cfa_"),
        "{kind}: a token was printed:\n{listed}"
    );
}

/// `certfleet token create --agent NAME --host MACHINE_ID`.
fn bound_token(config: &str, agent: &str, host: &str) -> String {
    let output = certfleet(&[
        "token", "create", "--config", config, "--agent", agent, "--host", host,
    ])
    .output()
    .expect("run certfleet token create");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

/// Now plus `seconds`, as RFC 3339 (a report collected a moment after the previous one).
fn later(seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&Rfc3339)
        .expect("formats")
}

// --- Enrollment: one credential per host, bound to it -----------------------------------

#[test]
fn an_agent_enrolls_once_and_speaks_only_for_its_host() {
    let database = TestDatabase::sqlite();
    let config = write_config(database.dir(), &database.url);
    let text = std::fs::read_to_string(&config).expect("read the config");
    let text = text.replace(
        "[server]\n",
        "[server]\nagent_enroll_secret = \"fleet-enroll-secret-0123\"\n",
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api");
    let state = database.dir().join("agent-state");
    std::fs::create_dir_all(&state).expect("state folder");
    let machine_id = state.join("machine-id");
    std::fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").expect("machine id");
    let credential = state.join("credential");
    let agent = |secret: &str| {
        certfleet(&["agent", "--once"])
            .env("CERTFLEET_AGENT__SERVER", service.url())
            .env("CERTFLEET_AGENT__ENROLL_SECRET", secret)
            .env("CERTFLEET_AGENT__CREDENTIAL_FILE", &credential)
            .env("CERTFLEET_AGENT__MACHINE_ID_FILE", &machine_id)
            .env("CERTFLEET_AGENT__HOSTNAME", "enrolled-host")
            .env("CERTFLEET_AGENT__SPOOL_DIR", "")
            .env("CERTFLEET_AGENT__SPLAY", "0s")
            .output()
            .expect("run certfleet agent --once")
    };

    // A wrong secret enrolls nothing.
    let refused = agent("not-the-secret");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(!credential.exists());

    // The first run enrolls and reports; the credential is the agent's alone.
    let first = agent("fleet-enroll-secret-0123");
    assert!(first.status.success(), "{first:?}\n{}", service.log());
    let token = std::fs::read_to_string(&credential).expect("the credential is kept");
    let token = token.trim().to_owned();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&credential)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credential file mode {mode:o}");
    // The second run uses the kept credential (a second enrollment would get 409).
    let second = agent("fleet-enroll-secret-0123");
    assert!(second.status.success(), "{second:?}\n{}", service.log());
    assert_eq!(
        std::fs::read_to_string(&credential).expect("kept").trim(),
        token
    );

    // The same host enrolling again (its credential lost) is refused while one is active.
    std::fs::remove_file(&credential).expect("lose the credential");
    let again = agent("fleet-enroll-secret-0123");
    assert!(!again.status.success(), "a second enrollment: {again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("409"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The enrolled credential reports its own host only.
    let socket = [Socket {
        address: LOOPBACK,
        port: 44302,
        process: "java",
    }];
    let mut other = report("another-host", &socket);
    other["host"]["machine_id"] = json!("ffffffffffffffffffffffffffffffff");
    let answer = post_report(&service, &token, &other);
    assert_eq!(answer.status, 403, "{}", answer.describe());
    let mut own = report("enrolled-host", &socket);
    own["host"]["machine_id"] = json!("0123456789abcdef0123456789abcdef");
    let answer = post_report(&service, &token, &own);
    assert_eq!(answer.status, 202, "{}", answer.describe());

    // Revoked by an operator: 401 at once, and the host may enroll again.
    let config_arg = config.to_str().expect("UTF-8 path");
    let revoke = certfleet(&[
        "token",
        "revoke",
        "--config",
        config_arg,
        "enrolled:0123456789abcdef0123456789abcdef",
    ])
    .output()
    .expect("run certfleet token revoke");
    assert!(revoke.status.success(), "{revoke:?}");
    assert_eq!(post_report(&service, &token, &own).status, 401);
    let renewed = agent("fleet-enroll-secret-0123");
    assert!(renewed.status.success(), "{renewed:?}\n{}", service.log());
}

// --- Report bombs: bounded memory with and without a token ------------------------------

#[test]
fn report_bombs_keep_memory_bounded_on_sqlite() {
    report_bombs_keep_memory_bounded(TestDatabase::sqlite());
}

#[test]
fn report_bombs_keep_memory_bounded_on_postgres() {
    report_bombs_keep_memory_bounded(TestDatabase::postgres());
}

/// Eight bodies at once, twice: the largest report the limits let through to the parser
/// (16 MiB decompressed of sockets with 256 reachable addresses each) and 400,000 sockets,
/// with a valid token and without one. Every answer is an error, the service stays up and
/// its peak RSS under 200 MiB, and a good report is stored afterwards.
fn report_bombs_keep_memory_bounded(database: TestDatabase) {
    let kind = database.kind();
    let config = write_config(database.dir(), &database.url);
    let service = Service::start(&config, "api");
    let token = create_token(&config, "bomb-agent");
    let head = r#"{"agent":{"version":"0.1.0"},"collected_at":"2026-11-27T10:00:00Z","host":{"hostname":"bomb","machine_id":"bomb","addresses":["10.0.0.5"]},"sockets":["#;
    let addresses: Vec<String> = (2..258).map(|n| format!("\"::{n:x}\"")).collect();
    let wide = format!(
        r#"{{"address":"::","port":1,"protocol":"tcp","scope":"host","reachable":[{}]}}"#,
        addresses.join(",")
    );
    let count = (15 * 1024 * 1024) / (wide.len() + 1);
    let reachable = format!("{head}{}]}}", vec![wide.as_str(); count].join(","));
    let minimal = r#"{"address":"::","port":1,"protocol":"tcp","scope":"host"}"#;
    let many = format!("{head}{}]}}", vec![minimal; 400_000].join(","));
    let bodies = [gzip(reachable.as_bytes()), gzip(many.as_bytes())];
    let before_kib = service.peak_rss_kib();
    for authorized in [true, false] {
        let answers: Vec<Response> = std::thread::scope(|scope| {
            let posts: Vec<_> = (0..8)
                .map(|index| {
                    let body = bodies[index % 2].clone();
                    let token = token.clone();
                    let address = service.address;
                    scope.spawn(move || {
                        let mut request =
                            Request::post_json(REPORTS, body).header("Content-Encoding", "gzip");
                        if authorized {
                            request = request.bearer(&token);
                        }
                        request.send(address).expect("POST a bomb")
                    })
                })
                .collect();
            posts
                .into_iter()
                .map(|post| post.join().expect("poster"))
                .collect()
        });
        for answer in answers {
            let expected: &[u16] = if authorized {
                &[400, 413, 503]
            } else {
                &[401, 503]
            };
            assert!(
                expected.contains(&answer.status),
                "{kind} (token: {authorized}): {}",
                answer.describe()
            );
        }
    }
    let peak_kib = service.peak_rss_kib();
    eprintln!("{kind}: peak RSS {before_kib} KiB before the bombs, {peak_kib} KiB after");
    assert!(
        peak_kib < 200 * 1024,
        "{kind}: peak RSS {peak_kib} KiB under 8 report bombs at once"
    );
    let socket = [Socket {
        address: LOOPBACK,
        port: 44303,
        process: "java",
    }];
    let answer = post_report(&service, &token, &report("after-bombs", &socket));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
}
