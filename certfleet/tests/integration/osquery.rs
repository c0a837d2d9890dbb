//! End to end: osquery's TLS enroll and logger posts to the real `certfleet serve`.
//! Results of a `listening_ports` query in each format (event, batch, snapshot), gzip or
//! not, with the node key in the body or the `Authorization: NodeKey` header, must leave
//! the same endpoints as an agent report for the same sockets.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// The serve tests' helpers, compiled here too (their module is private to `serve`).
#[path = "serve/http.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod http;
#[path = "serve/process.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod process;

use http::{Request, Response};
use process::Service;

const SECRET: &str = "osquery-test-secret";
const HOST: &str = "web-1.example";
const HOST_NS: u64 = 4_026_531_840;
const CONTAINER_NS: u64 = 4_026_532_000;

/// (address, port, net_namespace) of the listeners on the test host.
const SOCKETS: [(&str, u16, u64); 5] = [
    ("10.0.0.5", 8443, HOST_NS),
    ("0.0.0.0", 9443, HOST_NS),
    ("127.0.0.1", 5432, HOST_NS),
    ("172.17.0.2", 443, CONTAINER_NS),
    ("0.0.0.0", 8080, CONTAINER_NS),
];

#[derive(Debug, Clone, Copy)]
enum Format {
    Event,
    Batch,
    Snapshot,
}

/// A service with its own SQLite database; with the osquery endpoints on when `secret`.
fn start(secret: bool) -> (tempfile::TempDir, PathBuf, Service) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("certfleet.db").display());
    let config = process::write_config(dir.path(), &url);
    if secret {
        let mut text = std::fs::read_to_string(&config).expect("read the config");
        text.push_str(&format!("\n[osquery]\nenroll_secret = {SECRET:?}\n"));
        std::fs::write(&config, text).expect("write the config");
    }
    let service = Service::start(&config, "api");
    (dir, config, service)
}

fn send(service: &Service, request: Request) -> Response {
    request.send(service.address).unwrap_or_else(|error| {
        panic!(
            "request to {} failed: {error}; log:\n{}",
            service.url(),
            service.log()
        )
    })
}

fn post(service: &Service, path: &str, body: &Value, gzip: bool) -> Response {
    let bytes = serde_json::to_vec(body).expect("JSON serializes");
    let request = if gzip {
        Request::post_json(path, gzip_bytes(&bytes)).header("Content-Encoding", "gzip")
    } else {
        Request::post_json(path, bytes)
    };
    send(service, request)
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn enroll(service: &Service, secret: &str) -> Value {
    let body = json!({"enroll_secret": secret, "host_identifier": HOST,
        "host_details": {"system_info": {"hostname": HOST, "uuid": "4C4C4544"}}});
    let response = post(service, "/api/v1/osquery/enroll", &body, false);
    assert_eq!(response.status, 200, "{}", response.describe());
    response.json()
}

/// The `listening_ports` rows osquery would send (strings, as osquery does).
fn rows() -> Vec<Value> {
    SOCKETS
        .iter()
        .enumerate()
        .map(|(index, (address, port, netns))| {
            let family = if address.contains(':') { "10" } else { "2" };
            json!({"pid": (100 + index).to_string(), "port": port.to_string(), "protocol": "6",
                   "family": family, "address": address, "fd": "3",
                   "socket": (9000 + index).to_string(), "path": "",
                   "net_namespace": netns.to_string()})
        })
        .collect()
}

fn results(format: Format) -> Vec<Value> {
    let name = "pack_certfleet_listening_ports";
    match format {
        Format::Event => rows()
            .into_iter()
            .map(|row| {
                json!({"name": name, "hostIdentifier": HOST, "action": "added",
                              "unixTime": 1_764_237_600u64, "columns": row})
            })
            .collect(),
        Format::Batch => vec![json!({"name": name, "hostIdentifier": HOST,
            "diffResults": {"added": rows(), "removed": []}})],
        Format::Snapshot => vec![json!({"name": name, "hostIdentifier": HOST,
            "action": "snapshot", "snapshot": rows()})],
    }
}

/// The agent report of the same sockets: wildcards reachable at their namespace's address.
fn agent_report() -> Value {
    let reachable = |netns: u64| {
        if netns == HOST_NS {
            "10.0.0.5"
        } else {
            "172.17.0.2"
        }
    };
    let sockets: Vec<Value> = SOCKETS
        .iter()
        .map(|(address, port, netns)| {
            let wildcard = *address == "0.0.0.0";
            let scope = if address.starts_with("127.") {
                "loopback"
            } else {
                "host"
            };
            json!({"address": address, "port": port, "protocol": "tcp", "netns": netns,
                   "process": null, "container": null, "scope": scope,
                   "reachable": if wildcard { vec![reachable(*netns)] } else { vec![] }})
        })
        .collect();
    let now = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("RFC 3339");
    json!({"agent": {"version": "0.1.0"}, "collected_at": now,
           "host": {"hostname": HOST, "addresses": ["10.0.0.5"],
                    "namespace_addresses": ["172.17.0.2"]},
           "sockets": sockets})
}

/// The service's endpoints as (address, port, sni, hostname, process, container).
fn endpoints(service: &Service) -> BTreeSet<String> {
    let response = send(service, Request::get("/api/v1/endpoints?limit=100"));
    assert_eq!(response.status, 200, "{}", response.describe());
    let items = response.json()["items"].as_array().cloned().expect("items");
    items
        .iter()
        .map(|item| {
            let keys = ["address", "port", "sni", "hostname", "process", "container"];
            keys.map(|key| item[key].to_string()).join(" ")
        })
        .collect()
}

#[test]
fn osquery_results_in_every_format_give_the_agents_endpoints() {
    let (_dir, config, baseline) = start(false);
    let token = process::create_token(&config, "agent-1");
    let bytes = serde_json::to_vec(&agent_report()).expect("JSON serializes");
    let response = send(
        &baseline,
        Request::post_json("/api/v1/reports", bytes).bearer(&token),
    );
    assert_eq!(response.status, 202, "{}", response.describe());
    let expected = endpoints(&baseline);
    assert_eq!(
        expected.len(),
        4,
        "two host and two container endpoints: {expected:?}"
    );
    let off = post(&baseline, "/api/v1/osquery/enroll", &json!({}), false);
    assert_eq!(off.status, 404, "no secret, no osquery: {}", off.describe());

    let variants = [
        (Format::Event, false, false),
        (Format::Event, true, true),
        (Format::Batch, false, true),
        (Format::Batch, true, false),
        (Format::Snapshot, false, false),
        (Format::Snapshot, true, true),
    ];
    for (format, gzip, in_header) in variants {
        let (_dir, _config, service) = start(true);
        let node_key = enroll(&service, SECRET)["node_key"]
            .as_str()
            .expect("a node key")
            .to_owned();
        let status = json!({"node_key": node_key, "log_type": "status",
            "data": [{"severity": "0", "message": "osqueryd started"}]});
        let response = post(&service, "/api/v1/osquery/log", &status, gzip);
        assert_eq!((response.status, response.json()), (200, json!({})));
        let mut body = json!({"log_type": "result", "data": results(format)});
        let mut request_bytes = serde_json::to_vec(&body).expect("JSON serializes");
        if !in_header {
            body["node_key"] = json!(node_key);
            request_bytes = serde_json::to_vec(&body).expect("JSON serializes");
        }
        if gzip {
            request_bytes = gzip_bytes(&request_bytes);
        }
        let mut request = Request::post_json("/api/v1/osquery/log", request_bytes);
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        if in_header {
            request = request.header("Authorization", &format!("NodeKey {node_key}"));
        }
        let response = send(&service, request);
        let what = format!("{format:?}, gzip {gzip}, key in header {in_header}");
        assert_eq!(response.status, 200, "{what}: {}", response.describe());
        assert_eq!(response.json(), json!({}), "{what}");
        assert_eq!(endpoints(&service), expected, "{what}");
    }
}

#[test]
fn wrong_secrets_unknown_node_keys_and_bad_rows_are_refused() {
    let (_dir, _config, service) = start(true);
    assert_eq!(enroll(&service, "wrong")["node_invalid"], json!(true));
    let unknown =
        json!({"node_key": "not-a-key", "log_type": "result", "data": results(Format::Snapshot)});
    let response = post(&service, "/api/v1/osquery/log", &unknown, false);
    assert_eq!(
        (response.status, response.json()),
        (200, json!({"node_invalid": true}))
    );
    let node_key = enroll(&service, SECRET)["node_key"].clone();
    let mut bad = rows();
    bad[1]["port"] = json!("99999999999999999999");
    let body = json!({"node_key": node_key, "log_type": "result", "data": [
        {"name": "listening_ports", "action": "snapshot", "snapshot": bad}]});
    let response = post(&service, "/api/v1/osquery/log", &body, true);
    assert_eq!(response.status, 400, "{}", response.describe());
    assert_eq!(response.json()["field"], json!("data[0].snapshot[1].port"));
    let response = post(
        &service,
        "/api/v1/osquery/log",
        &json!({"node_key": 5}),
        false,
    );
    assert_eq!(response.status, 400, "{}", response.describe());
    assert_eq!(response.json()["field"], json!("node_key"));
    assert!(
        endpoints(&service).is_empty(),
        "nothing stored from refused posts"
    );
}
