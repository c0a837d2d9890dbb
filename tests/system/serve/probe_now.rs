//! Probe now (issue 16), against the real binary on SQLite and PostgreSQL: a TLS server is
//! reported and probed; it then serves a renewed certificate, which the schedule would not
//! look at for about a day; an operator token asks for a probe (`POST
//! /api/v1/endpoints/{id}/probe`) and the renewed certificate is recorded within seconds.
//! The read token and agent tokens get 403, no token 401, a second request 429, a revoked
//! operator token 401.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::database::TestDatabase;
use super::fresh_mail::on_same_port;
use super::http::{Request, Response};
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{post_report, report, Socket};
use crate::pki::{Cert, Pki, Spec};
use crate::tls_server::TlsServer;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on waiting for the service's prober (it looks every second when idle).
const LIMIT: Duration = Duration::from_secs(30);
const READ_TOKEN: &str = "read-token-for-probe-now-0123456789";

#[test]
fn an_operator_has_a_renewed_certificate_probed_now_on_sqlite() {
    probe_now(TestDatabase::sqlite());
}

#[test]
fn an_operator_has_a_renewed_certificate_probed_now_on_postgres() {
    probe_now(TestDatabase::postgres());
}

fn leaf(pki: &Pki, name: &str, days_left: i64) -> Cert {
    pki.issue(
        name,
        Spec::leaf("renew.test", &["renew.test"])
            .valid(time::Duration::days(-10), time::Duration::days(days_left)),
        None,
    )
}

/// `certfleet token create --operator NAME`: the token, alone on the last stdout line.
pub(super) fn operator_token(config: &Path, name: &str) -> String {
    let config = config.to_str().expect("UTF-8 path");
    let output = certfleet(&["token", "create", "--config", config, "--operator", name])
        .output()
        .expect("run certfleet token create --operator");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned();
    assert!(token.starts_with("cfo_"), "{stdout}");
    token
}

fn ask(service: &Service, id: i64, token: Option<&str>) -> Response {
    let mut request = Request::post_json(&format!("/api/v1/endpoints/{id}/probe"), Vec::new());
    if let Some(token) = token {
        request = request.bearer(token);
    }
    request
        .send(service.address)
        .unwrap_or_else(|error| panic!("POST probe: {error}\n{}", service.log()))
}

/// The endpoint probed without a name at 127.0.0.1:`port`, read with the read token.
fn unnamed(service: &Service, port: u16) -> Option<Value> {
    let path = format!("/api/v1/endpoints?address=127.0.0.1&port={port}");
    let answer = Request::get(&path)
        .bearer(READ_TOKEN)
        .send(service.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}\n{}", service.log()));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.describe());
    let items = answer.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items.into_iter().find(|item| item["sni"].is_null())
}

/// The unnamed endpoint at `port` once it records `leaf`.
fn wait_for_leaf(service: &Service, port: u16, leaf: &Cert, what: &str) -> Value {
    let mut found = Value::Null;
    certfleet_testkit::wait_until(what, LIMIT, &|| service.log(), || {
        found = unnamed(service, port).unwrap_or(Value::Null);
        found["observation"]["leaf_sha256"] == leaf.sha256.as_str()
    });
    found
}

fn probe_now(database: TestDatabase) {
    let kind = database.kind();
    let pki = Pki::new();
    let old = leaf(&pki, "old", 80);
    let renewed = leaf(&pki, "renewed", 365);
    let server = TlsServer::serving(&[&old], &old)
        .start()
        .expect("start the TLS server");
    let port = server.port;
    let config = write_config(database.dir(), &database.url);
    let text = std::fs::read_to_string(&config).expect("read the config");
    let text = text.replacen(
        "[server]\n",
        &format!("[server]\nread_token = {READ_TOKEN:?}\n"),
        1,
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober");
    let agent = create_token(&config, "renew-agent");
    let socket = [Socket {
        address: LOOPBACK,
        port,
        process: "web",
    }];
    let answer = post_report(&service, &agent, &report("renew-host", &socket));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    let first = wait_for_leaf(&service, port, &old, "the first probe records the old leaf");
    let id = first["id"].as_i64().expect("an endpoint id");

    // Renewed on the same socket: the schedule would look again in about a day.
    drop(server);
    let _renewed_server = on_same_port("the renewed TLS server", || {
        TlsServer::serving(&[&renewed], &renewed)
            .at(SocketAddr::new(LOOPBACK, port))
            .start()
    });

    for (who, token, status) in [
        ("nobody", None, 401),
        ("the read token", Some(READ_TOKEN), 403),
        ("an agent token", Some(agent.as_str()), 403),
    ] {
        let answer = ask(&service, id, token);
        assert_eq!(
            answer.status,
            status,
            "{kind}: {who}: {}",
            answer.describe()
        );
    }
    let operator = operator_token(&config, "alice");
    let answer = ask(&service, id, Some(&operator));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());
    assert_eq!(answer.json()["endpoint"], id, "{kind}");
    let again = ask(&service, id, Some(&operator));
    assert_eq!(again.status, 429, "{kind}: {}", again.describe());
    assert!(again.header("retry-after").is_some(), "{kind}");

    let now = wait_for_leaf(
        &service,
        port,
        &renewed,
        "the requested probe records the renewed leaf",
    );
    assert_eq!(now["id"], id, "{kind}: the same endpoint");

    // Listed with its kind; revoked, it asks for nothing more.
    let config_arg = config.to_str().expect("UTF-8 path");
    let list = certfleet(&["token", "list", "--config", config_arg])
        .output()
        .expect("run certfleet token list");
    let listed = String::from_utf8_lossy(&list.stdout);
    let line = listed
        .lines()
        .find(|line| line.starts_with("alice "))
        .unwrap_or_else(|| panic!("{kind}: alice not listed:\n{listed}"));
    assert!(line.contains("operator"), "{kind}: {line}");
    assert!(
        !listed.contains("cfo_"),
        "{kind}: a token was printed:\n{listed}"
    );
    let revoke = certfleet(&["token", "revoke", "--config", config_arg, "alice"])
        .output()
        .expect("run certfleet token revoke");
    assert!(revoke.status.success(), "{kind}: {revoke:?}");
    let answer = ask(&service, id, Some(&operator));
    assert_eq!(answer.status, 401, "{kind}: {}", answer.describe());
}
