//! Names to present, end to end: an agent reports one port of a rustls server that picks
//! its certificate by SNI. The service probes it without SNI (the default certificate,
//! whose SANs name `other.sni.test` too), then under each name it learned (the reporting
//! host's name and the certificate's DNS names), and so finds the certificate served only
//! for `other.sni.test`: both certificates end up in the store, each under its name. The
//! host's name, a guess, selects the default certificate and is retired.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use certfleet_store::{EndpointFilter, EndpointRecord, Store};

use super::database::{open_store, runtime, TestDatabase};
use super::http::Request;
use super::process::{create_token, write_config, Service};
use super::reports::{bytes, report, Socket};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on the probes finishing (they take well under a second each).
const PROBE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn sni_dependent_certificates_are_each_found_under_their_name() {
    let pki = Pki::new();
    let default_sans = ["default.sni.test", "other.sni.test", "127.0.0.1"];
    let default = pki.issue(
        "default",
        Spec::leaf("default.sni.test", &default_sans),
        None,
    );
    let other = pki.issue(
        "other",
        Spec::leaf("other.sni.test", &["other.sni.test"]),
        None,
    );
    let server = TlsServer::serving(&[&default], &default)
        .for_name("other.sni.test", &[&other], &other)
        .start()
        .expect("start the SNI server");

    let database = TestDatabase::sqlite();
    let config = write_config(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "sni-agent");
    let socket = Socket {
        address: LOOPBACK,
        port: server.port,
        process: "rustls",
    };
    let body = bytes(&report("sni-host", &[socket]));
    let accepted = Request::post_json("/api/v1/reports", body)
        .bearer(&token)
        .send(service.address)
        .expect("POST the report");
    assert_eq!(accepted.status, 202, "{}", accepted.describe());

    let store = open_store(&database.url);
    let names = [None, Some("default.sni.test"), Some("other.sni.test")];
    let leaves = wait_for_leaves(&*store, server.port, &names, &service);
    // The host's name is a guess that selects the default certificate: once probed, it
    // is retired (docs/probing.md), so it is never among the listed leaves.
    let guess = wait_for_retired(&*store, server.port, "sni-host", &service);
    let guess_leaf = guess.observation.and_then(|o| o.leaf_sha256);
    assert_eq!(
        guess_leaf.as_ref(),
        Some(&default.sha256),
        "the host name's leaf"
    );
    let expected: BTreeMap<Option<String>, String> = [
        (None, &default.sha256),
        (Some("default.sni.test"), &default.sha256),
        (Some("other.sni.test"), &other.sha256),
    ]
    .into_iter()
    .map(|(name, sha256)| (name.map(str::to_owned), sha256.clone()))
    .collect();
    assert_eq!(leaves, expected, "the leaf served under each name");

    // The certificate served only for other.sni.test is in the store, under that name.
    let detail = runtime()
        .block_on(store.certificate(&other.sha256))
        .expect("the SNI-only certificate is stored");
    let under: Vec<Option<&str>> = detail
        .served_at
        .iter()
        .filter(|served| served.port == server.port && served.current)
        .map(|served| served.sni.as_deref())
        .collect();
    assert_eq!(under, vec![Some("other.sni.test")], "{detail:?}");
    // An IP address is never presented as a name.
    let ip_named = endpoints_of(&*store, server.port)
        .iter()
        .any(|endpoint| endpoint.sni.as_deref() == Some("127.0.0.1"));
    assert!(!ip_named, "an IP address was used as SNI");
    let sent: Vec<Option<String>> = server.handshakes().into_iter().map(|h| h.sni).collect();
    assert!(
        sent.contains(&Some("other.sni.test".to_owned())),
        "{sent:?}"
    );
}

/// Polls (every 100 ms, at most [`PROBE_LIMIT`]) until the endpoint under each of `names`
/// has an observation; returns every probed endpoint's leaf SHA-256 by name.
fn wait_for_leaves(
    store: &dyn Store,
    port: u16,
    names: &[Option<&str>],
    service: &Service,
) -> BTreeMap<Option<String>, String> {
    let started = Instant::now();
    loop {
        let leaves: BTreeMap<Option<String>, String> = endpoints_of(store, port)
            .into_iter()
            .filter_map(|endpoint| {
                let leaf = endpoint.observation?.leaf_sha256?;
                Some((endpoint.sni, leaf))
            })
            .collect();
        let all_there = names
            .iter()
            .all(|name| leaves.contains_key(&name.map(str::to_owned)));
        if all_there {
            return leaves;
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "not every name probed: {leaves:?}\nservice log:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls (every 100 ms, at most [`PROBE_LIMIT`]) until the endpoint under `name` is
/// retired; returns it.
fn wait_for_retired(store: &dyn Store, port: u16, name: &str, service: &Service) -> EndpointRecord {
    let started = Instant::now();
    loop {
        let filter = EndpointFilter {
            address: Some(LOOPBACK),
            port: Some(port),
            include_retired: true,
            limit: 100,
            ..EndpointFilter::default()
        };
        let all = runtime()
            .block_on(store.endpoints(&filter))
            .expect("list endpoints");
        let found = all
            .iter()
            .find(|e| e.sni.as_deref() == Some(name) && e.retired_at.is_some());
        if let Some(found) = found {
            return found.clone();
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "{name} not retired: {all:#?}\nservice log:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn endpoints_of(store: &dyn Store, port: u16) -> Vec<EndpointRecord> {
    let filter = EndpointFilter {
        address: Some(LOOPBACK),
        port: Some(port),
        limit: 100,
        ..EndpointFilter::default()
    };
    runtime()
        .block_on(store.endpoints(&filter))
        .expect("list endpoints")
}
