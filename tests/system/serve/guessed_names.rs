//! Guessed names, end to end (issue 14, item 2): an agent on host `guess-host` reports a
//! socket of an `openssl s_server` inside a network namespace whose address has the PTR
//! name `ptr.guess.test` (dnsmasq on a loopback port). The server has one certificate, for
//! `default.guess.test`. The service probes the socket without SNI, then under the host's
//! name and the PTR name (guessed) and under the certificate's name. Both guesses get the
//! default certificate: they raise no `hostname_mismatch` and are retired, so neither the
//! store's listing nor the API shows them. A static target with a configured name its
//! server's certificate does not cover keeps its `hostname_mismatch`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use certfleet_model::Finding;
use certfleet_store::{EndpointFilter, EndpointRecord, Store};
use certfleet_testkit::netns::Netns;

use super::database::{open_store, runtime, TestDatabase};
use super::http::Request;
use super::process::{create_token, Service};
use super::reports::{bytes, report, Socket};
use crate::dns_server::Dnsmasq;
use crate::openssl_server::free_port;
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

/// Bound on every name being probed (a few seconds when things work).
const PROBE_LIMIT: Duration = Duration::from_secs(90);
const STATIC_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));

type Key = (String, u16, Option<String>);

#[test]
fn guessed_names_raise_no_mismatch_and_retire_when_they_select_the_default_on_sqlite() {
    guessed_names_raise_no_mismatch_and_retire(TestDatabase::sqlite());
}

#[test]
fn guessed_names_raise_no_mismatch_and_retire_when_they_select_the_default_on_postgres() {
    guessed_names_raise_no_mismatch_and_retire(TestDatabase::postgres());
}

fn guessed_names_raise_no_mismatch_and_retire(database: TestDatabase) {
    let Some(mut netns) = certfleet_testkit::netns::netns_or_skip("guessed names") else {
        return;
    };
    let [a, b, c, d] = netns.address.octets();
    let records = [format!(
        "--ptr-record={d}.{c}.{b}.{a}.in-addr.arpa,ptr.guess.test"
    )];
    let dns = match Dnsmasq::start(&records) {
        Ok(dns) => dns,
        Err(why) => {
            certfleet_testkit::skip(&format!("{why} (scripts/test installs dnsmasq)"));
            return;
        }
    };
    let pki = Pki::new();
    let default = pki.issue(
        "default",
        Spec::leaf("default.guess.test", &["default.guess.test"]),
        None,
    );
    let port = free_port();
    let in_netns = SocketAddr::new(IpAddr::V4(netns.address), port);
    serve_in(&mut netns, &pki, in_netns, &default);
    let static_server = TlsServer::serving(&[&default], &default)
        .at(SocketAddr::new(STATIC_ADDRESS, port))
        .start()
        .expect("start the static target's server");

    let config = database.dir().join("certfleet.toml");
    let text = format!(
        "[database]\nurl = {url:?}\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [probe]\nallow = [\"127.0.0.0/8\", \"198.18.0.0/15\"]\ntimeout = \"5s\"\n\
         nameservers = [\"{dns}\"]\n\n\
         [[probe.targets]]\nhosts = [\"{STATIC_ADDRESS}\"]\nports = [{port}]\n\
         names = [\"wrong.guess.test\"]\n\n\
         [notify]\noutbox_dir = {outbox:?}\n",
        url = database.url,
        dns = dns.address(),
        outbox = database.dir().join("outbox").display().to_string(),
    );
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober,scheduler");
    let token = create_token(&config, "guess-agent");
    let socket = Socket {
        address: in_netns.ip(),
        port,
        process: "openssl",
    };
    let body = bytes(&report("guess-host", &[socket]));
    let accepted = Request::post_json("/api/v1/reports", body)
        .bearer(&token)
        .send(service.address)
        .expect("POST the report");
    assert_eq!(accepted.status, 202, "{}", accepted.describe());

    let store = open_store(&database.url);
    let netns_ip = in_netns.ip().to_string();
    let static_ip = STATIC_ADDRESS.to_string();
    let key = |address: &str, name: Option<&str>| -> Key {
        (address.to_owned(), port, name.map(str::to_owned))
    };
    let kept = [
        key(&netns_ip, None),
        key(&netns_ip, Some("default.guess.test")),
        key(&static_ip, None),
        key(&static_ip, Some("wrong.guess.test")),
        key(&static_ip, Some("default.guess.test")),
    ];
    let retired = [
        key(&netns_ip, Some("guess-host")),
        key(&netns_ip, Some("ptr.guess.test")),
    ];
    // Every endpoint, retired ones included, once each has been probed and the guesses
    // have retired.
    let started = Instant::now();
    let all = loop {
        let all = every_endpoint(&*store);
        let probed = |key: &Key| all.get(key).is_some_and(|e| e.observation.is_some());
        let gone = |key: &Key| all.get(key).is_some_and(|e| e.retired_at.is_some());
        if kept.iter().all(probed) && retired.iter().all(|key| probed(key) && gone(key)) {
            break all;
        }
        assert!(
            started.elapsed() < PROBE_LIMIT,
            "not every name probed and settled:\n{all:#?}\nservice log:\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let leaf_of = |key: &Key| {
        all.get(key)
            .and_then(|e| e.observation.as_ref())
            .and_then(|o| o.leaf_sha256.clone())
    };
    for key in kept.iter().chain(&retired) {
        assert_eq!(leaf_of(key), Some(default.sha256.clone()), "{key:?}");
    }
    // Only the configured name its certificate does not cover has hostname_mismatch.
    let mismatched: Vec<&Key> = all
        .iter()
        .filter(|(_, e)| {
            e.observation
                .as_ref()
                .is_some_and(|o| o.findings.contains(&Finding::HostnameMismatch))
        })
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        mismatched,
        vec![&key(&static_ip, Some("wrong.guess.test"))],
        "hostname_mismatch only for the configured name"
    );
    // The API lists the kept endpoints only; none with hostname_mismatch but the static.
    let response = Request::get(&format!("/api/v1/endpoints?port={port}&limit=100"))
        .send(service.address)
        .expect("GET the endpoints");
    assert_eq!(response.status, 200, "{}", response.describe());
    let items = response.json()["items"].as_array().cloned().expect("items");
    let mut listed: Vec<Key> = items
        .iter()
        .map(|item| {
            let address = item["address"].as_str().expect("address").to_owned();
            let sni = item["sni"].as_str().map(str::to_owned);
            (address, port, sni)
        })
        .collect();
    listed.sort();
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(listed, expected, "the guesses are not listed");
    let listed_mismatch = items
        .iter()
        .filter(|item| {
            item["observation"]["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == "hostname_mismatch"))
        })
        .count();
    assert_eq!(listed_mismatch, 1, "{items:#?}");
    drop(static_server);
}

/// `openssl s_server` in the namespace at `address`, with only `cert`.
fn serve_in(netns: &mut Netns, pki: &Pki, address: SocketAddr, cert: &crate::pki::Cert) {
    let path = |p: &std::path::Path| p.to_str().expect("temporary paths are UTF-8").to_owned();
    let (cert_path, key_path) = (path(&cert.cert_path), path(&cert.key_path));
    let accept = address.to_string();
    let args = [
        "s_server", "-quiet", "-accept", &accept, "-cert", &cert_path, "-key", &key_path,
    ];
    let log = pki.path("s_server-guessed.log");
    netns.spawn("openssl", &args, &log);
    let started = Instant::now();
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "openssl s_server in the namespace did not listen at {address}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every endpoint, retired ones included, by (address, port, name).
fn every_endpoint(store: &dyn Store) -> BTreeMap<Key, EndpointRecord> {
    let filter = EndpointFilter {
        include_retired: true,
        limit: 100,
        ..EndpointFilter::default()
    };
    runtime()
        .block_on(store.endpoints(&filter))
        .expect("list the endpoints")
        .into_iter()
        .map(|e| ((e.address.clone(), e.port, e.sni.clone()), e))
        .collect()
}
