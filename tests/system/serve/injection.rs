//! Hostile strings in every report field that reaches the store or a page (host name,
//! machine id, the app/env/owner tags, process, container) and in the certificate a
//! loopback TLS server presents (subject CN and SANs): they are stored verbatim (read
//! back through the JSON API), the tables stay intact, and every HTML page shows them
//! escaped. Control characters are refused with a 400 naming the field. Query parameters
//! carrying injection strings (and NUL) answer 400 or an empty result, never 500.
//! On SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use certfleet_testkit::browser::dump_dom;
use serde_json::{json, Value};

use super::database::{open_store, runtime, TestDatabase};
use super::http::{Request, Response};
use super::process::{create_token, write_config, Service};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

const HOSTNAME: &str = "<script>alert('host')</script>'; DROP TABLE hosts; --";
const MACHINE_ID: &str = "'); DELETE FROM hosts; --";
const APP: &str = "'; DROP TABLE endpoints; --";
const ENV: &str = "\" onmouseover=\"alert('env')";
const OWNER: &str = "<img src=x onerror=document.body.setAttribute('data-pwned','owner')>@x.com";
const PROCESS: &str = "<script>document.body.setAttribute('data-pwned','process')</script>";
const CONTAINER: &str = "Ünïcødé ✓ 证书 \u{202e}txt.exe' OR '1'='1";
const CERT_CN: &str = "<script>alert('cn')</script>";
const CERT_SANS: [&str; 2] = [
    "<script>alert('san')</script>.test",
    "x\" onmouseover=\"y.test",
];
/// What must never appear in a page: markup or attribute breakouts the strings carry.
/// (The pages themselves carry no script element.)
const RAW_MARKUP: [&str; 3] = ["<script", "<img src=x", "\" onmouseover=\""];
/// Bound on the service's prober recording the endpoint.
const PROBE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn hostile_strings_are_stored_verbatim_and_shown_escaped_on_sqlite() {
    hostile_strings_are_stored_verbatim_and_shown_escaped(TestDatabase::sqlite());
}

#[test]
fn hostile_strings_are_stored_verbatim_and_shown_escaped_on_postgres() {
    hostile_strings_are_stored_verbatim_and_shown_escaped(TestDatabase::postgres());
}

fn hostile_strings_are_stored_verbatim_and_shown_escaped(database: TestDatabase) {
    let pki = Pki::new();
    let leaf = pki.issue("hostile", Spec::leaf(CERT_CN, &CERT_SANS), None);
    let server = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start the TLS server");
    let config = write_config(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober,scheduler");
    let token = create_token(&config, "hostile-agent");
    let kind = database.kind();
    let send = |request: Request| -> Response {
        request
            .send(service.address)
            .unwrap_or_else(|error| panic!("{kind}: request failed: {error}\n{}", service.log()))
    };

    let post = |report: &Value| {
        let body = serde_json::to_vec(report).expect("JSON");
        send(Request::post_json("/api/v1/reports", body).bearer(&token))
    };
    let answer = post(&hostile_report(server.port, &|_| {}));
    assert_eq!(answer.status, 202, "{kind}: {}", answer.describe());

    // Control characters (NUL-free) are refused, and the answer names the field.
    let controls: [(&str, Change); 4] = [
        ("host.hostname", |r| {
            r["host"]["hostname"] = json!("a\u{1b}[31mred")
        }),
        ("host.tags.app", |r| {
            r["host"]["tags"]["app"] = json!("tab\there")
        }),
        ("sockets[0].process", |r| {
            r["sockets"][0]["process"] = json!("bell\u{7}")
        }),
        ("sockets[0].container", |r| {
            r["sockets"][0]["container"] = json!("cr\rlf\n")
        }),
    ];
    for (field, change) in controls {
        let answer = post(&hostile_report(server.port, &change));
        assert_eq!(answer.status, 400, "{kind} {field}: {}", answer.describe());
        assert_eq!(
            answer.json()["field"],
            field,
            "{kind}: {}",
            answer.describe()
        );
    }

    // The prober records the endpoint and the hostile certificate.
    let endpoint = wait_for_probe(&service, server.port, kind);
    for (name, want) in [
        ("hostname", HOSTNAME),
        ("app", APP),
        ("env", ENV),
        ("owner", OWNER),
        ("process", PROCESS),
        ("container", CONTAINER),
    ] {
        assert_eq!(endpoint[name], want, "{kind}: {name} of {endpoint}");
    }
    let id = endpoint["id"].as_i64().expect("an endpoint id");
    let detail = send(Request::get(&format!(
        "/api/v1/certificates/{}",
        leaf.sha256
    )));
    assert_eq!(detail.status, 200, "{kind}: {}", detail.describe());
    let detail = detail.json();
    for san in CERT_SANS {
        assert!(
            has_string(&detail, san),
            "{kind}: SAN {san:?} not in {detail}"
        );
    }
    assert!(
        detail.to_string().contains("alert('cn')"),
        "{kind}: the subject CN is not in {detail}"
    );

    // The tables are intact and still take reports.
    let store = open_store(&database.url);
    let inventory = runtime().block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 1, "{kind}: {inventory:?}");
    let plain = json!({"agent": {"version": "0.1.0"}, "collected_at": "2026-11-27T10:00:00Z",
        "host": {"hostname": "plain-host", "addresses": ["10.1.1.1"]},
        "sockets": [{"address": "0.0.0.0", "port": 8443, "protocol": "tcp",
                     "reachable": ["10.1.1.1"], "scope": "host"}]});
    assert_eq!(
        post(&plain).status,
        202,
        "{kind}: a plain report after the hostile one"
    );
    let inventory = runtime().block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 2, "{kind}: {inventory:?}");

    // Every page shows the strings escaped: no markup of theirs survives.
    let pages = [
        "/".to_owned(),
        "/endpoints".to_owned(),
        format!("/endpoints?app={}", encode(APP)),
        format!("/endpoints/{id}"),
        "/certificates".to_owned(),
        format!("/certificates/{}", leaf.sha256),
        format!("/search?q={}", encode(HOSTNAME)),
        format!("/search?q={}", encode(CERT_SANS[0])),
        format!("/owners/{}", encode(OWNER)),
        "/mtls".to_owned(),
        "/notifications/failed".to_owned(),
    ];
    let mut shown = 0;
    for page in &pages {
        let answer = send(Request::get(page));
        let html = String::from_utf8_lossy(&answer.body).to_lowercase();
        assert!(
            matches!(answer.status, 200 | 303 | 404),
            "{kind} {page}: {}",
            answer.status
        );
        assert_ne!(answer.status, 500, "{kind} {page}");
        for raw in RAW_MARKUP {
            assert!(
                !html.contains(raw),
                "{kind} {page} carries {raw:?} unescaped:\n{html}"
            );
        }
        if html.contains("&lt;script&gt;") || html.contains("&lt;img src=x") {
            shown += 1;
        }
    }
    let endpoint_page = send(Request::get(&format!("/endpoints/{id}")));
    let endpoint_html = String::from_utf8_lossy(&endpoint_page.body);
    assert!(
        endpoint_html.contains("&lt;script&gt;document.body.setAttribute("),
        "{kind}: the endpoint page does not show the process name escaped:\n{endpoint_html}"
    );
    eprintln!(
        "{kind}: {} pages checked, {shown} show the hostile strings escaped",
        pages.len()
    );

    // In a real browser no injected script runs: the payloads would mark the body.
    if kind == "sqlite" {
        let urls = [
            format!("/endpoints/{id}"),
            "/endpoints".to_owned(),
            format!("/certificates/{}", leaf.sha256),
            format!("/owners/{}", encode(OWNER)),
        ];
        match browser_doms(service.address, &urls, database.dir()) {
            Some(doms) => {
                for (url, dom) in urls.iter().zip(&doms) {
                    assert!(
                        !dom.contains("data-pwned=\""),
                        "{url}: a script ran:\n{dom}"
                    );
                }
                eprintln!(
                    "{kind}: chromium ran no injected script on {} pages",
                    urls.len()
                );
            }
            None => certfleet_testkit::skip(&format!(
                "{kind}: the browser check: chromium is not installed"
            )),
        }
    }

    // Query parameters with injection strings: 400 or an empty result, never 500.
    let probes = [
        "/api/v1/endpoints?address=%27%20OR%201%3D1%20--",
        "/api/v1/endpoints?port=1%20OR%201%3D1",
        "/api/v1/endpoints?app=%27%20OR%20%271%27%3D%271",
        "/api/v1/endpoints?env=%22%3B%20DROP%20TABLE%20hosts%3B%20--",
        "/api/v1/endpoints?owner=%25",
        "/api/v1/endpoints?app=%00",
        "/api/v1/endpoints?mtls=%27%3B--",
        "/api/v1/endpoints?finding=%3Cscript%3E",
        "/api/v1/endpoints?limit=1%3B%20DROP%20TABLE%20endpoints",
        "/api/v1/endpoints?cursor=%27%20OR%20%271%27%3D%271",
        "/api/v1/certificates?hostname=%27%20OR%20%271%27%3D%271",
        "/api/v1/certificates?hostname=%25",
        "/api/v1/certificates?hostname=_",
        "/api/v1/certificates?hostname=%00",
        "/api/v1/certificates?serial=%27%20OR%201%3D1%20--",
        "/api/v1/certificates?serial=%00",
        "/api/v1/certificates?fingerprint=%27%3B%20DROP%20TABLE%20certificates%3B%20--",
        "/api/v1/certificates?issuer=%25",
        "/api/v1/certificates?issuer=%27%20OR%20%271%27%3D%271",
        "/api/v1/certificates?issuer=%00",
        "/api/v1/certificates?expiring_within=1d%3B%20DROP",
        "/api/v1/certificates?limit=-1",
        "/api/v1/certificates/%27%3B%20DROP%20TABLE%20certificates%3B%20--",
        "/api/v1/endpoints/1%20OR%201%3D1",
        "/api/v1/mtls/summary?by=%27%3B--",
        "/api/v1/notifications?owner=%27%20OR%20%271%27%3D%271",
        "/search?q=%00",
        "/search?q=%27%20OR%20%271%27%3D%271",
        "/endpoints?app=%00",
        "/certificates?hostname=%00",
        "/owners/%00",
    ];
    let mut outcomes = Vec::new();
    for path in probes {
        let answer = send(Request::get(path));
        outcomes.push(format!("{} {path}", answer.status));
        assert!(
            answer.status < 500,
            "{kind} {path}: {}\n{}",
            answer.describe(),
            super::load::tail(&service.log(), 20)
        );
        if answer.status == 200 && path.starts_with("/api/") {
            let body = answer.json();
            if let Some(items) = body.get("items").and_then(Value::as_array) {
                assert!(items.is_empty(), "{kind} {path} matched: {body}");
            }
        }
    }
    eprintln!(
        "{kind}: injection query answers:\n  {}",
        outcomes.join("\n  ")
    );
    let inventory = runtime().block_on(store.inventory()).expect("inventory");
    assert_eq!(inventory.hosts, 2, "{kind}: {inventory:?}");
}

/// A change to a report.
type Change = fn(&mut Value);

/// The hostile report, changed by `change`.
fn hostile_report(port: u16, change: &dyn Fn(&mut Value)) -> Value {
    let mut report = json!({
        "agent": {"version": "0.1.0"}, "collected_at": "2026-11-27T10:00:00Z",
        "host": {"hostname": HOSTNAME, "machine_id": MACHINE_ID, "addresses": ["127.0.0.1"],
                 "tags": {"app": APP, "env": ENV, "owner": OWNER}},
        "sockets": [{"address": "0.0.0.0", "port": port, "protocol": "tcp",
                     "netns": 4026531840u64, "process": PROCESS, "container": CONTAINER,
                     "reachable": ["127.0.0.1"], "scope": "host"}],
    });
    change(&mut report);
    report
}

/// The endpoint 127.0.0.1:PORT without SNI (JSON API), once the prober recorded it.
fn wait_for_probe(service: &Service, port: u16, kind: &str) -> Value {
    let started = Instant::now();
    loop {
        let path = format!("/api/v1/endpoints?address=127.0.0.1&port={port}");
        let page = Request::get(&path)
            .send(service.address)
            .expect("GET endpoints")
            .json();
        let found = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["sni"].is_null()).cloned());
        if let Some(endpoint) = found {
            if endpoint["last_status"] == "ok" {
                return endpoint;
            }
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "{kind}: endpoint not probed: {page}\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each page's DOM after load in headless Chromium (`--dump-dom`), or `None` without it.
fn browser_doms(
    address: std::net::SocketAddr,
    paths: &[String],
    scratch: &std::path::Path,
) -> Option<Vec<String>> {
    let chromium = certfleet_testkit::browser::chromium()?;
    let doms = paths
        .iter()
        .map(|path| dump_dom(&chromium, &format!("http://{address}{path}"), scratch))
        .collect();
    Some(doms)
}

/// Whether `value` holds the string `needle` anywhere.
fn has_string(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(text) => text == needle,
        Value::Array(items) => items.iter().any(|item| has_string(item, needle)),
        Value::Object(map) => map.values().any(|item| has_string(item, needle)),
        _ => false,
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
