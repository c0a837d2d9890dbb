//! No mail about a certificate already replaced (issue 18), against the real binary on
//! SQLite and PostgreSQL: a server whose certificate has 5 days left is probed and
//! recorded; it then serves a new one-year certificate; the next notification run probes
//! the endpoint again before mailing, sends nothing about the old certificate, and the
//! endpoint shows the new one, with the rotation's discovery latency in `/metrics`. And
//! when that confirming probe fails, the mail says when the certificate was last seen.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::database::TestDatabase;
use super::http::Request;
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{endpoints_at, post_report, report, Socket};
use crate::pki::{Cert, Pki, Spec};
use crate::tls_server::TlsServer;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on waiting for the service's prober and scheduler (each looks every second).
const LIMIT: Duration = Duration::from_secs(30);
/// `notify.confirm_within` in these tests. The default is an hour; a second keeps the
/// tests short while meaning the same: the last probe is older than this when the
/// notification run comes, so the run probes again.
const CONFIRM_WITHIN: &str = "1s";

#[test]
fn a_rotated_certificate_is_not_mailed_about_on_sqlite() {
    rotated_certificate_is_not_mailed_about(TestDatabase::sqlite());
}

#[test]
fn a_rotated_certificate_is_not_mailed_about_on_postgres() {
    rotated_certificate_is_not_mailed_about(TestDatabase::postgres());
}

#[test]
fn a_failed_confirming_probe_says_when_the_certificate_was_last_seen_on_sqlite() {
    failed_confirming_probe_says_when_last_seen(TestDatabase::sqlite());
}

#[test]
fn a_failed_confirming_probe_says_when_the_certificate_was_last_seen_on_postgres() {
    failed_confirming_probe_says_when_last_seen(TestDatabase::postgres());
}

/// A 90-day certificate with 5 days left: the 7-day threshold is due.
pub(super) fn expiring(pki: &Pki) -> Cert {
    pki.issue(
        "old",
        Spec::leaf("fresh.test", &["fresh.test"])
            .valid(time::Duration::days(-85), time::Duration::days(5)),
        None,
    )
}

/// The config `write_config` writes, with `lines` added to its `[notify]` section.
pub(super) fn config_with_notify(database: &TestDatabase, lines: &str) -> std::path::PathBuf {
    let config = write_config(database.dir(), &database.url);
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    text.push_str(lines);
    std::fs::write(&config, text).expect("write the config");
    config
}

/// Reports the socket and waits until the service's prober recorded `leaf` there.
pub(super) fn probed(service: &Service, token: &str, port: u16, leaf: &Cert, kind: &str) -> Value {
    let socket = [Socket {
        address: LOOPBACK,
        port,
        process: "web",
    }];
    let answer = post_report(service, token, &report("fresh-host", &socket));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    let mut found = Value::Null;
    certfleet_testkit::wait_until(
        &format!("{kind}: the first probe records the old certificate"),
        LIMIT,
        &|| service.log(),
        || {
            found = unnamed(service, port).unwrap_or(Value::Null);
            found["observation"]["leaf_sha256"] == leaf.sha256.as_str()
        },
    );
    found
}

/// Starts a server on the port a dropped one used: its listener closes as its task ends,
/// a moment after the drop, so a bind may find the port still taken for a while.
pub(super) fn on_same_port<T>(what: &str, start: impl Fn() -> std::io::Result<T>) -> T {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        match start() {
            Ok(server) => return server,
            Err(error)
                if error.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("start {what} on the same port: {error}"),
        }
    }
}

fn unnamed(service: &Service, port: u16) -> Option<Value> {
    endpoints_at(service, port)
        .into_iter()
        .find(|item| item["sni"].is_null())
}

fn time_of(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a time"), &Rfc3339).expect("RFC 3339")
}

/// `certfleet notify --config CONFIG [ARGS]`: its stdout; it must succeed.
pub(super) fn notify(config: &Path, args: &[&str]) -> String {
    let config = config.to_str().expect("UTF-8 path");
    let mut all = vec!["notify", "--config", config];
    all.extend_from_slice(args);
    let output = certfleet(&all).output().expect("run certfleet notify");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "certfleet notify {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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

/// The value of a sample line `name value` in an exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        (series == name).then(|| value.parse().ok())?
    })
}

fn rotated_certificate_is_not_mailed_about(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let old = expiring(&pki);
    let renewed = pki.issue(
        "new",
        Spec::leaf("fresh.test", &["fresh.test"])
            .valid(time::Duration::days(-1), time::Duration::days(364)),
        None,
    );
    let server = TlsServer::serving(&[&old], &old)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = config_with_notify(&database, &format!("confirm_within = {CONFIRM_WITHIN:?}\n"));
    // Probers and the API; no scheduler: the notification run below is the only one.
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "fresh-agent");
    let first = probed(&service, &token, port, &old, kind);

    // The next scheduled probe follows the certificate: a tenth of the 5 days left (12 h,
    // give or take the 10 % jitter), not the 24-hour interval.
    let wait = time_of(&first["next_probe_at"]) - time_of(&first["last_probed_at"]);
    assert!(
        wait >= time::Duration::hours(10) && wait <= time::Duration::hours(14),
        "{kind}: next probe in {wait}: {first}"
    );

    // The certificate is renewed on the same socket.
    drop(server);
    let _renewed_server = on_same_port("the renewed TLS server", || {
        TlsServer::serving(&[&renewed], &renewed)
            .at(SocketAddr::new(LOOPBACK, port))
            .start()
    });
    // What the store holds is now older than notify.confirm_within.
    std::thread::sleep(Duration::from_millis(1500));

    // Without confirming, a run would mail about the old certificate (what --dry-run
    // shows: it probes nothing).
    let dry = notify(&config, &["--dry-run"]);
    assert!(
        dry.contains("fresh.test") && dry.contains("Expires:"),
        "{kind}: the dry run should still show the stale certificate:\n{dry}"
    );

    // The run probes the endpoint again, finds the new certificate, and mails nothing.
    let run = notify(&config, &[]);
    assert!(
        run.contains("1 endpoint(s) probed again before mail (0 failed, 0 not probed), 1 certificate(s) found rotated"),
        "{kind}: {run}"
    );
    assert!(run.contains("0 digests sent"), "{kind}: {run}");
    let outbox = database.dir().join("outbox");
    assert!(
        eml_files(&outbox).is_empty(),
        "{kind}: a mail went out about a replaced certificate: {:?}",
        eml_files(&outbox)
    );

    // The endpoint shows the new certificate, probed by that run.
    let now = unnamed(&service, port).expect("the endpoint");
    assert_eq!(
        now["observation"]["leaf_sha256"],
        renewed.sha256.as_str(),
        "{kind}: {now}"
    );
    assert!(time_of(&now["last_probed_at"]) > time_of(&first["last_probed_at"]));
    // A year left: the next probe is the 24-hour interval again (with its jitter).
    let wait = time_of(&now["next_probe_at"]) - time_of(&now["last_probed_at"]);
    assert!(
        wait >= time::Duration::hours(21) && wait <= time::Duration::hours(27),
        "{kind}: next probe in {wait}: {now}"
    );

    // The rotation and how long it took to see it: from the first probe to the
    // confirming one.
    let mut exposition = String::new();
    certfleet_testkit::wait_until(
        &format!("{kind}: /metrics counts the rotation"),
        LIMIT,
        &|| service.log(),
        || {
            exposition = Request::get("/metrics")
                .send(service.address)
                .map(|answer| String::from_utf8_lossy(&answer.body).into_owned())
                .unwrap_or_default();
            sample(
                &exposition,
                "certfleet_rotation_discovery_latency_seconds_count",
            ) == Some(1.0)
        },
    );
    let latency = sample(
        &exposition,
        "certfleet_rotation_discovery_latency_seconds_sum",
    )
    .expect("the latency sum");
    let expected =
        (time_of(&now["last_probed_at"]) - time_of(&first["last_probed_at"])).as_seconds_f64();
    assert!(
        (latency - expected).abs() <= 1.0,
        "{kind}: latency {latency} s, probes {expected} s apart"
    );
    println!("{kind}: rotation discovery latency {latency:.2} s (confirming probe)");
    let within_a_minute = r#"certfleet_rotation_discovery_latency_seconds_bucket{le="60.0"} 1"#;
    assert!(
        exposition.contains(within_a_minute),
        "{kind}:\n{exposition}"
    );
    let dashboard = Request::get("/").send(service.address).expect("GET /");
    let dashboard = String::from_utf8_lossy(&dashboard.body);
    assert!(
        dashboard.contains("Rotations seen in the last 7 days: 1; half seen within 1 minute"),
        "{kind}: {dashboard}"
    );
}

fn failed_confirming_probe_says_when_last_seen(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let old = expiring(&pki);
    let server = TlsServer::serving(&[&old], &old)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = config_with_notify(
        &database,
        &format!("confirm_within = {CONFIRM_WITHIN:?}\ninterval = \"1s\"\n"),
    );
    let probers = Service::start(&config, "api,prober");
    let token = create_token(&config, "fresh-agent");
    let first = probed(&probers, &token, port, &old, kind);

    // The server goes away; once the last probe is older than confirm_within, a
    // scheduler starts (as `serve --roles scheduler` beside the probers).
    drop(server);
    std::thread::sleep(Duration::from_millis(1500));
    let scheduler = Service::start_in_background(&config, "scheduler");
    let outbox = database.dir().join("outbox");
    let mut mails = Vec::new();
    certfleet_testkit::wait_until(
        &format!("{kind}: the digest about fresh.test"),
        LIMIT,
        &|| scheduler.log(),
        || {
            mails = eml_files(&outbox);
            !mails.is_empty()
        },
    );
    let mail = mails.join("\n");
    // The mail does not claim the certificate is served: the probe just before it failed.
    assert!(mail.contains("fresh.test"), "{kind}:\n{mail}");
    assert!(mail.contains("Last seen at:"), "{kind}:\n{mail}");
    assert!(!mail.contains("Served at:"), "{kind}:\n{mail}");
    assert!(
        mail.contains("not reachable when probed at") && mail.contains("(refused)"),
        "{kind}:\n{mail}"
    );
    let seen = time_of(&first["last_probed_at"])
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .expect("format");
    assert!(
        mail.contains(&format!("last seen serving it {seen}")),
        "{kind}: want last seen {seen}:\n{mail}"
    );
    // The endpoint records that failed probe, and keeps the certificate it last saw.
    let now = unnamed(&probers, port).expect("the endpoint");
    assert_eq!(now["last_status"], "refused", "{kind}: {now}");
    assert_eq!(
        now["observation"]["leaf_sha256"],
        old.sha256.as_str(),
        "{kind}: {now}"
    );
}

#[test]
fn a_tarpit_holds_the_digest_no_longer_than_confirm_wait_on_sqlite() {
    tarpit_holds_the_digest_no_longer_than_confirm_wait(TestDatabase::sqlite());
}

#[test]
fn a_tarpit_holds_the_digest_no_longer_than_confirm_wait_on_postgres() {
    tarpit_holds_the_digest_no_longer_than_confirm_wait(TestDatabase::postgres());
}

/// The endpoint turns into a tarpit (accepts, never answers) and probes may take 60 s;
/// the run waits `confirm_wait` (1 s) for its confirmation, then mails what the last probe
/// saw and hands the endpoint back to the probers, due at once.
fn tarpit_holds_the_digest_no_longer_than_confirm_wait(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let old = expiring(&pki);
    let server = TlsServer::serving(&[&old], &old)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = config_with_notify(
        &database,
        &format!("confirm_within = {CONFIRM_WITHIN:?}\nconfirm_wait = \"1s\"\n"),
    );
    let text = std::fs::read_to_string(&config).expect("read the config");
    std::fs::write(
        &config,
        text.replace("timeout = \"5s\"", "timeout = \"60s\""),
    )
    .expect("write the config");
    let service = Service::start(&config, "api");
    let token = create_token(&config, "fresh-agent");
    let probers = Service::start_in_background(&config, "prober");
    probed(&service, &token, port, &old, kind);
    drop(probers);

    drop(server);
    // Bound with SO_REUSEADDR (the old server's closed connections linger in TIME_WAIT),
    // listening but never accepting: connections complete, handshakes never do.
    let _tarpit = on_same_port("the tarpit", || {
        super::database::runtime().block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(LOOPBACK, port))?;
            socket.listen(16)
        })
    });
    std::thread::sleep(Duration::from_millis(1500));
    let run = notify(&config, &[]);
    assert!(
        run.contains("0 endpoint(s) probed again before mail (0 failed, 1 not probed)"),
        "{kind}: {run}"
    );
    assert!(run.contains("1 digests sent"), "{kind}: {run}");
    let mails = eml_files(&database.dir().join("outbox")).join("\n");
    assert!(
        mails.contains("fresh.test") && mails.contains("Served at:"),
        "{kind}:\n{mails}"
    );
    // Handed back: due now, for the probers to take.
    let endpoint = unnamed(&service, port).expect("the endpoint");
    let due = time_of(&endpoint["next_probe_at"]);
    assert!(
        due <= OffsetDateTime::now_utc(),
        "{kind}: the endpoint is not due again: {endpoint}"
    );
}
