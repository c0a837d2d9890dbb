//! Where the service's prober may connect: a report naming link-local (cloud metadata),
//! multicast, broadcast, unspecified addresses and an address outside `probe.allow` is
//! accepted, those sockets are recorded as `denied` without any connection (the one
//! outside `probe.allow` has a listener that must see none), and the allowed endpoint of
//! the same report is probed as usual. Link-local and multicast stay refused even when
//! the configuration allows their networks.

use std::io::ErrorKind;
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant};

use certfleet_model::ProbeStatus;
use certfleet_store::EndpointFilter;
use serde_json::json;

use super::database::{open_store, runtime, TestDatabase};
use super::http::Request;
use super::process::{create_token, Service};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

/// Bound on the prober recording every endpoint of the report (it looks every second).
const PROBE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn reports_cannot_aim_the_prober_at_link_local_multicast_or_outside_probe_allow() {
    let database = TestDatabase::sqlite();
    let pki = Pki::new();
    let leaf = pki.issue(
        "allowed",
        Spec::leaf("allowed.test", &["allowed.test"]),
        None,
    );
    let allowed = TlsServer::serving(&[&leaf], &leaf)
        .start()
        .expect("start the TLS server");
    // 127.0.0.2 is outside probe.allow (127.0.0.1/32): this listener must see nothing.
    let trap = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let trap_port = trap.local_addr().expect("bound").port();

    // The configuration even lists the link-local and multicast networks: they are still
    // refused.
    let outbox = database.dir().join("outbox");
    let config = database.dir().join("certfleet.toml");
    let text = format!(
        "[database]\nurl = {url:?}\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"127.0.0.1/32\", \"169.254.0.0/16\", \"fe80::/10\", \
         \"224.0.0.0/4\", \"ff00::/8\", \"255.255.255.255/32\"]\ntimeout = \"5s\"\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        url = database.url,
        outbox = outbox.display().to_string(),
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "network-agent");

    let refused: [(&str, u16); 8] = [
        ("127.0.0.2", trap_port),
        ("169.254.169.254", 80),
        ("::ffff:169.254.169.254", 80),
        ("fe80::1", 443),
        ("224.0.0.1", 443),
        ("ff02::1", 443),
        ("255.255.255.255", 443),
        ("169.254.0.1", 8443),
    ];
    let mut sockets = vec![socket("127.0.0.1", allowed.port, &["127.0.0.1"])];
    sockets.extend(
        refused
            .iter()
            .map(|(address, port)| socket(address, *port, &[address])),
    );
    // Unspecified addresses are no destination at all: never an endpoint.
    sockets.push(socket("0.0.0.0", 9443, &["0.0.0.0"]));
    sockets.push(socket("::", 9444, &["::"]));
    // A hostile agent lists every address it aims at as its own, so that the report
    // passes ingest and only the prober's own rules stand between them and a probe.
    let mut own: Vec<&str> = refused.iter().map(|(address, _)| *address).collect();
    own.push("127.0.0.1");
    let report = json!({
        "agent": {"version": "0.1.0"}, "collected_at": "2026-11-27T10:00:00Z",
        "host": {"hostname": "network-host", "machine_id": "m-network",
                 "addresses": own, "tags": {"app": "network"}},
        "sockets": sockets,
    });
    let answer = Request::post_json(
        "/api/v1/reports",
        serde_json::to_vec(&report).expect("JSON"),
    )
    .bearer(&token)
    .send(service.address)
    .expect("POST the report");
    assert_eq!(answer.status, 202, "{}", answer.describe());
    let counts = answer.json();
    assert_eq!(counts["endpoints"], 1 + refused.len(), "{counts}");

    let store = open_store(&database.url);
    let started = Instant::now();
    let endpoints = loop {
        let endpoints = runtime()
            .block_on(store.endpoints(&EndpointFilter::default()))
            .expect("list endpoints");
        if endpoints
            .iter()
            .all(|endpoint| endpoint.last_status.is_some())
        {
            break endpoints;
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "endpoints not recorded: {endpoints:?}\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let no_sni = endpoints.iter().filter(|e| e.sni.is_none()).count();
    assert_eq!(no_sni, 1 + refused.len(), "{endpoints:?}");
    // Every endpoint, the ones under a name to present (SNI) included, is either the
    // allowed one, probed, or denied without a connection.
    let mut report_lines = Vec::new();
    for endpoint in &endpoints {
        let address: IpAddr = endpoint.address.parse().expect("an address");
        report_lines.push(format!(
            "{}:{} sni {:?}: {:?} {}",
            endpoint.address,
            endpoint.port,
            endpoint.sni.as_deref().unwrap_or(""),
            endpoint.last_status,
            endpoint.last_error.as_deref().unwrap_or("")
        ));
        assert!(
            !address.is_unspecified(),
            "an unspecified address became an endpoint"
        );
        if endpoint.port == allowed.port && endpoint.address == "127.0.0.1" {
            assert_eq!(endpoint.last_status, Some(ProbeStatus::Ok), "{endpoint:?}");
        } else {
            assert_eq!(
                endpoint.last_status,
                Some(ProbeStatus::Denied),
                "{endpoint:?}"
            );
            assert!(endpoint.observation.is_none(), "{endpoint:?}");
        }
    }
    trap.set_nonblocking(true).expect("non-blocking");
    match trap.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the prober connected outside probe.allow: {other:?}"),
    }
    assert!(
        !allowed.handshakes().is_empty(),
        "the allowed endpoint was not probed"
    );
    eprintln!("allowed networks:\n  {}", report_lines.join("\n  "));
}

fn socket(address: &str, port: u16, reachable: &[&str]) -> serde_json::Value {
    let wildcard = address == "0.0.0.0" || address == "::";
    json!({"address": if wildcard { address } else { "0.0.0.0" }, "port": port,
           "protocol": "tcp", "netns": 4026531840u64, "process": "svc", "container": null,
           "reachable": reachable, "scope": "host"})
}
