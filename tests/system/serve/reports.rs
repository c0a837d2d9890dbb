//! Agent reports as an agent would send them (the agent report contract), and gzip.

use std::io::Write;
use std::net::IpAddr;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One listening socket of a report.
pub struct Socket {
    /// The address the socket is reachable at.
    pub address: IpAddr,
    pub port: u16,
    pub process: &'static str,
}

/// A report from host `hostname`: every socket bound to the wildcard address and
/// reachable at its own address, which the host lists among its addresses.
pub fn report(hostname: &str, sockets: &[Socket]) -> Value {
    let collected_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .expect("now formats as RFC 3339");
    // The host's own addresses: every address its sockets are reachable at.
    let mut own: Vec<String> = vec!["127.0.0.1".into()];
    for socket in sockets {
        let address = socket.address.to_string();
        if !own.contains(&address) {
            own.push(address);
        }
    }
    let sockets: Vec<Value> = sockets
        .iter()
        .map(|socket| {
            json!({
                "address": "0.0.0.0", "port": socket.port, "protocol": "tcp",
                "netns": 4026531840u64, "process": socket.process, "container": null,
                "reachable": [socket.address.to_string()], "scope": "host"
            })
        })
        .collect();
    json!({
        "agent": {"version": "0.1.0"},
        "collected_at": collected_at,
        "host": {
            "hostname": hostname, "machine_id": format!("machine-{hostname}"),
            "addresses": own,
            "tags": {"app": "e2e", "env": "test", "owner": "e2e-team@example.com"}
        },
        "sockets": sockets,
    })
}

/// The JSON bytes of a report.
pub fn bytes(report: &Value) -> Vec<u8> {
    serde_json::to_vec(report).expect("a report serializes")
}

/// `data`, gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// `POST /api/v1/reports` of `report` with an agent token, against a running service.
pub fn post_report(
    service: &super::process::Service,
    token: &str,
    report: &Value,
) -> super::http::Response {
    super::http::Request::post_json("/api/v1/reports", bytes(report))
        .bearer(token)
        .send(service.address)
        .unwrap_or_else(|error| panic!("POST /api/v1/reports: {error}\n{}", service.log()))
}

/// Every endpoint (the socket and its names) at 127.0.0.1:`port`.
pub fn endpoints_at(service: &super::process::Service, port: u16) -> Vec<Value> {
    let path = format!("/api/v1/endpoints?address=127.0.0.1&port={port}");
    let answer = super::http::Request::get(&path)
        .send(service.address)
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.describe());
    answer.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
