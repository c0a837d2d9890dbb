//! End to end: osquery's TLS enroll and logger posts to the real `certfleet serve`.
//! Results of a `listening_ports` query in each format (event, batch, snapshot), gzip or
//! not, with the node key in the body or the `Authorization: NodeKey` header, must leave
//! the same endpoints as an agent report for the same sockets. Wildcard listeners are
//! probed at the host's `interface_addresses` sent in another post, before or after, and
//! decorations become the endpoints' tags.

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

/// `interface_addresses` rows of a host (loopback and link-local among them, as osquery
/// gives them).
fn interface_rows() -> Vec<Value> {
    [
        "10.0.0.5",
        "127.0.0.1",
        "fe80::5054:ff:fe12:3456%eth0",
        "fd00::5",
        "::1",
    ]
    .iter()
    .map(|address| {
        let mask = if address.contains(':') {
            "ffff:ffff:ffff:ffff::"
        } else {
            "255.255.255.0"
        };
        json!({"interface": "eth0", "address": address, "mask": mask,
                   "broadcast": "", "point_to_point": "", "type": "dhcp", "friendly_name": ""})
    })
    .collect()
}

/// The `listening_ports` rows of a host whose listeners bind only wildcards (and
/// loopback).
fn wildcard_rows() -> Vec<Value> {
    [
        ("0.0.0.0", 9443, "2"),
        ("::", 8443, "10"),
        ("127.0.0.1", 5432, "2"),
    ]
    .iter()
    .map(|(address, port, family)| {
        json!({"pid": "812", "port": port.to_string(), "protocol": "6", "family": family,
                   "address": address, "fd": "7", "socket": "24511", "path": "",
                   "net_namespace": HOST_NS.to_string()})
    })
    .collect()
}

/// The service's endpoints as (address, port, app, env, owner).
fn owned_endpoints(service: &Service) -> BTreeSet<String> {
    let response = send(service, Request::get("/api/v1/endpoints?limit=100"));
    assert_eq!(response.status, 200, "{}", response.describe());
    let items = response.json()["items"].as_array().cloned().expect("items");
    items
        .iter()
        .map(|item| {
            let keys = ["address", "port", "app", "env", "owner"];
            keys.map(|key| item[key].to_string()).join(" ")
        })
        .collect()
}

/// Issue 14, item 7: a host whose listeners bind only wildcards is probed at the
/// addresses of its `interface_addresses` results, whether they come in a post before or
/// after the `listening_ports` one (and across a restart of the service), and its
/// decorations become the endpoints' app, env and owner.
#[test]
fn osquery_wildcards_are_probed_at_interface_addresses_with_decorations_as_tags() {
    let decorations = json!({"app": "billing", "env": "prod",
        "owner": "billing-team@example.com", "host_uuid": "4C4C4544"});
    let interfaces = |decorated: bool| {
        let mut entry = json!({"name": "pack_certfleet_interface_addresses",
            "hostIdentifier": HOST, "action": "snapshot", "snapshot": interface_rows()});
        if decorated {
            entry["decorations"] = decorations.clone();
        }
        entry
    };
    let listeners = |decorated: bool| {
        // Batch format, as osquery writes it in differential mode.
        let mut entry = json!({"name": "pack_certfleet_listening_ports",
            "hostIdentifier": HOST, "diffResults": {"added": wildcard_rows(), "removed": []}});
        if decorated {
            entry["decorations"] = decorations.clone();
        }
        entry
    };
    let expected: BTreeSet<String> = [
        r#""10.0.0.5" 9443"#,
        r#""10.0.0.5" 8443"#,
        r#""fd00::5" 8443"#,
    ]
    .iter()
    .map(|endpoint| format!(r#"{endpoint} "billing" "prod" "billing-team@example.com""#))
    .collect();
    let log = |service: &Service, key: &Value, entry: Value| {
        let body = json!({"node_key": key, "log_type": "result", "data": [entry]});
        let response = post(service, "/api/v1/osquery/log", &body, true);
        assert_eq!(response.status, 200, "{}", response.describe());
        assert_eq!(response.json(), json!({}));
    };

    // Interface addresses first (with the decorations), the listeners in a later post.
    let (_dir, _config, service) = start(true);
    let key = enroll(&service, SECRET)["node_key"].clone();
    log(&service, &key, interfaces(true));
    assert!(owned_endpoints(&service).is_empty(), "no listener yet");
    log(&service, &key, listeners(false));
    assert_eq!(
        owned_endpoints(&service),
        expected,
        "addresses before listeners"
    );

    // The listeners first (with the decorations): nothing to probe yet; the interface
    // addresses come after a restart of the service, and the kept wildcards are probed.
    let (_dir, config, service) = start(true);
    let key = enroll(&service, SECRET)["node_key"].clone();
    log(&service, &key, listeners(true));
    assert!(
        owned_endpoints(&service).is_empty(),
        "wildcards without addresses are not probed"
    );
    drop(service);
    let service = Service::start(&config, "api");
    log(&service, &key, interfaces(false));
    assert_eq!(
        owned_endpoints(&service),
        expected,
        "addresses after listeners"
    );
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

/// `{"node_key": KEY, ...rest}` from `{...rest}`.
fn with_node_key(json: &[u8], key: &str) -> Vec<u8> {
    let mut out = format!("{{\"node_key\":{},", json!(key)).into_bytes();
    out.extend_from_slice(json.get(1..).expect("a JSON object"));
    out
}

/// What a hostile body must be answered with (when its credential is not refused first).
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 400 naming this field.
    BadField(&'static str),
    /// 400 whose message says this.
    BadMessage(&'static str),
    /// 200 `{}` with a valid key, `{"node_invalid": true}` without.
    Accepted,
}

/// Issue 13: hostile logger bodies, eight at once, without a key, with a wrong key (in the
/// body or the header) and with the valid node key (in the body or the header). Each gets
/// a clear answer, the service keeps a bounded memory and stays up, and a good post is
/// stored afterwards. Before the bodies were parsed into typed, bounded structs, the same
/// posts took the service past 1 GiB.
#[test]
fn hostile_bodies_eight_at_once_keep_memory_bounded() {
    const LIMIT_KIB: u64 = 200 * 1024;
    let zeros = {
        let mut text = b"{\"data\":[".to_vec();
        text.extend(std::iter::repeat_n(*b"0,", 8 * 1024 * 1024).flatten());
        text.extend_from_slice(b"0]}");
        text
    };
    let entry = serde_json::to_vec(&json!({"name": "listening_ports", "hostIdentifier": HOST,
        "action": "added", "columns": {"port": "443", "protocol": "6", "family": "2",
        "address": "10.1.2.3", "net_namespace": "1"}}))
    .expect("JSON serializes");
    let entries = {
        let mut text = b"{\"log_type\":\"result\",\"data\":[".to_vec();
        for _ in 0..(30 * 1024 * 1024 / (entry.len() + 1)) {
            text.extend_from_slice(&entry);
            text.push(b',');
        }
        text.extend_from_slice(&entry);
        text.extend_from_slice(b"]}");
        text
    };
    let string = {
        let mut text = b"{\"log_type\":\"result\",\"x\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', 30 * 1024 * 1024));
        text.extend_from_slice(b"\"}");
        text
    };
    // Not compressed, under the 8 MiB limit as sent: entries of another query with large
    // fields that are skipped, read to the end.
    let plain = {
        let other = serde_json::to_vec(&json!({"name": "processes", "action": "added",
            "columns": {"pid": "1"}, "decorations": {"x": "a".repeat(360)}}))
        .expect("JSON serializes");
        let mut text = b"{\"log_type\":\"result\",\"data\":[".to_vec();
        for _ in 0..18_000 {
            text.extend_from_slice(&other);
            text.push(b',');
        }
        text.extend_from_slice(&other);
        text.extend_from_slice(b"]}");
        assert!(text.len() < 8 * 1024 * 1024, "{} bytes", text.len());
        text
    };
    // (name, JSON text, gzip, expected)
    let bombs = [
        ("zeros", zeros, true, Expect::BadField("data[0]")),
        ("entries", entries, true, Expect::BadField("data")),
        ("string", string, true, Expect::BadMessage("longer than")),
        ("plain", plain, false, Expect::Accepted),
    ];

    let (_dir, _config, service) = start(true);
    let node_key = enroll(&service, SECRET)["node_key"]
        .as_str()
        .expect("a node key")
        .to_owned();
    let before_kib = service.peak_rss_kib();
    // (label, request, expected status, expected JSON when not an error)
    let mut posts: Vec<(String, Request, Expect, bool)> = Vec::new();
    for (name, text, gzip, expect) in &bombs {
        // (who, key, in the header, valid)
        let credentials = [
            ("no key", None, false, false),
            ("a wrong key in the body", Some("wrong-key"), false, false),
            ("a wrong key in the header", Some("wrong-key"), true, false),
            (
                "the node key in the body",
                Some(node_key.as_str()),
                false,
                true,
            ),
            (
                "the node key in the header",
                Some(node_key.as_str()),
                true,
                true,
            ),
        ];
        for (who, key, in_header, valid) in credentials {
            if !gzip && in_header && !valid {
                // Refused before its 7 MiB body is read: the client may see the
                // connection reset while still sending, and lose the answer.
                continue;
            }
            let mut bytes = match key {
                Some(key) if !in_header => with_node_key(text, key),
                _ => text.clone(),
            };
            if *gzip {
                bytes = gzip_bytes(&bytes);
            }
            let mut request = Request::post_json("/api/v1/osquery/log", bytes);
            if *gzip {
                request = request.header("Content-Encoding", "gzip");
            }
            if let (Some(key), true) = (key, in_header) {
                request = request.header("Authorization", &format!("NodeKey {key}"));
            }
            // A wrong key in the header is refused before the body is read.
            let expect = if in_header && !valid {
                Expect::Accepted
            } else {
                *expect
            };
            posts.push((format!("{name} with {who}"), request, expect, valid));
        }
    }
    let mut answered = 0;
    let mut remaining = posts;
    while !remaining.is_empty() {
        let batch: Vec<_> = remaining.drain(..remaining.len().min(8)).collect();
        let address = service.address;
        let responses: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .into_iter()
                .map(|(label, request, expect, valid)| {
                    scope.spawn(move || (label, request.send(address), expect, valid))
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("a sender thread"))
                .collect()
        });
        for (label, response, expect, valid) in responses {
            let response = response.unwrap_or_else(|error| {
                panic!("{label}: no answer ({error}); log:\n{}", service.log())
            });
            let what = format!("{label}: {}", response.describe());
            match expect {
                Expect::BadField(field) => {
                    assert_eq!(response.status, 400, "{what}");
                    assert_eq!(response.json()["field"], json!(field), "{what}");
                }
                Expect::BadMessage(text) => {
                    assert_eq!(response.status, 400, "{what}");
                    let message = response.json()["error"].as_str().map(str::to_owned);
                    assert!(message.is_some_and(|m| m.contains(text)), "{what}");
                }
                Expect::Accepted => {
                    assert_eq!(response.status, 200, "{what}");
                    let expected = if valid {
                        json!({})
                    } else {
                        json!({"node_invalid": true})
                    };
                    assert_eq!(response.json(), expected, "{what}");
                }
            }
            answered += 1;
        }
    }
    assert_eq!(answered, 19);

    // Still up, and a good post is stored.
    let health = send(&service, Request::get("/healthz"));
    assert_eq!(health.status, 200, "{}", health.describe());
    let good = json!({"node_key": node_key, "log_type": "result",
        "data": results(Format::Snapshot)});
    let response = post(&service, "/api/v1/osquery/log", &good, true);
    assert_eq!(
        (response.status, response.json()),
        (200, json!({})),
        "{}",
        response.describe()
    );
    assert_eq!(endpoints(&service).len(), 4, "the good post's endpoints");

    let peak_kib = service.peak_rss_kib();
    eprintln!("peak RSS: {before_kib} KiB before the bombs, {peak_kib} KiB after");
    assert!(
        peak_kib < LIMIT_KIB,
        "peak RSS {peak_kib} KiB (limit {LIMIT_KIB} KiB; {before_kib} KiB before the bombs)"
    );
}

/// Past `server.ingest_concurrency` requests in flight, an ingest request is answered
/// `503` with `Retry-After` at once; the slot is free again once the request in flight
/// is answered.
#[test]
fn ingest_past_the_concurrency_limit_is_503_with_retry_after() {
    use std::io::{Read, Write};

    let (_dir, config, service) = start(true);
    drop(service);
    let service = Service::start_with_env(
        &config,
        "api",
        &[("CERTFLEET_SERVER__INGEST_CONCURRENCY", "1")],
    );
    let node_key = enroll(&service, SECRET)["node_key"]
        .as_str()
        .expect("a node key")
        .to_owned();
    // One logger post whose body has not all arrived holds the only slot.
    let body = serde_json::to_vec(&json!({"node_key": node_key, "log_type": "result",
        "data": results(Format::Snapshot)}))
    .expect("JSON serializes");
    let (first, rest) = body.split_at(10);
    let hold = || {
        let mut held = std::net::TcpStream::connect(service.address).expect("connect");
        let head = format!(
            "POST /api/v1/osquery/log HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            service.address,
            body.len()
        );
        held.write_all(head.as_bytes()).expect("send the head");
        held.write_all(first).expect("send the first bytes");
        held
    };
    let mut held = hold();

    // The held request and a probe race for the slot until the held one has it: a held
    // request that was answered (503) is sent again.
    let wrong = json!({"enroll_secret": "wrong", "host_identifier": HOST});
    let mut busy = None;
    for _ in 0..600 {
        held.set_nonblocking(true).expect("non-blocking");
        let mut peek = [0u8; 16];
        let answered = matches!(held.peek(&mut peek), Ok(n) if n > 0);
        held.set_nonblocking(false).expect("blocking");
        if answered {
            let mut answer = String::new();
            let _ = held.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            held = hold();
        }
        let response = post(&service, "/api/v1/osquery/enroll", &wrong, false);
        if response.status == 503 {
            busy = Some(response);
            break;
        }
        assert_eq!(
            (response.status, response.json()),
            (200, json!({"node_invalid": true})),
            "{}",
            response.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let busy = busy.unwrap_or_else(|| {
        panic!(
            "no 503 while the only slot is held; log:\n{}",
            service.log()
        )
    });
    assert_eq!(busy.header("retry-after"), Some("5"), "{}", busy.describe());
    assert!(
        busy.json()["error"].as_str().is_some(),
        "{}",
        busy.describe()
    );
    let report = Request::post_json("/api/v1/reports", b"{}".to_vec()).bearer("any");
    let response = send(&service, report);
    assert_eq!(
        response.status,
        503,
        "reports share the slots: {}",
        response.describe()
    );

    // The held request completes and is stored; the slot is free again.
    held.write_all(rest).expect("send the rest");
    let mut answer = String::new();
    held.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{}"), "{answer}");
    assert_eq!(endpoints(&service).len(), 4);
    let again = post(&service, "/api/v1/osquery/enroll", &wrong, false);
    assert_eq!(
        (again.status, again.json()),
        (200, json!({"node_invalid": true}))
    );
}
