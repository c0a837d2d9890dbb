//! A report posted over HTTP for local TLS endpoints leads, with nothing else, to their
//! certificates and mTLS state in the store; and the ingest answers of the contract
//! (401, 400 naming the field, 413, gzip, idempotence). On SQLite and on PostgreSQL.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use certfleet_model::ProbeStatus;
use certfleet_store::{EndpointFilter, EndpointRecord, Inventory, Store};
use serde_json::json;

use super::database::{open_store, runtime, TestDatabase};
use super::http::Request;
use super::process::{create_token, write_config, Service};
use super::reports::{bytes, gzip, report, Socket};
use crate::openssl_server::OpensslServer;
use crate::pki::{Pki, Spec};
use crate::tls_server::{ClientAuth, TlsServer};

const REPORTS: &str = "/api/v1/reports";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on waiting for the service's own prober; a probe of these servers takes
/// milliseconds, and the prober looks for due endpoints every second.
const OBSERVATION_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_posted_report_leads_to_certificates_and_mtls_state_on_sqlite() {
    report_leads_to_certificates_and_mtls_state(TestDatabase::sqlite());
}

#[test]
fn a_posted_report_leads_to_certificates_and_mtls_state_on_postgres() {
    report_leads_to_certificates_and_mtls_state(TestDatabase::postgres());
}

/// What one endpoint must end up with in the store.
struct Expected {
    port: u16,
    leaf_sha256: String,
    requested: bool,
    required: Option<bool>,
    ca_name: Option<String>,
}

fn report_leads_to_certificates_and_mtls_state(database: TestDatabase) {
    let pki = Pki::new();
    let chain = pki.chain(Spec::leaf("required.e2e.test", &["required.e2e.test"]));
    let client_ca = pki.issue("client-ca", Spec::ca("E2E Client CA"), None);
    let none_leaf = pki.issue(
        "none",
        Spec::leaf("none.e2e.test", &["none.e2e.test"]),
        Some(&chain.intermediate),
    );
    let optional_leaf = pki.issue(
        "optional",
        Spec::leaf("optional.e2e.test", &["optional.e2e.test"]),
        Some(&chain.intermediate),
    );
    let required = TlsServer::serving(&[&chain.leaf, &chain.intermediate], &chain.leaf)
        .client_auth(ClientAuth::Required, &client_ca)
        .start()
        .expect("start the rustls server");
    let none = OpensslServer::serving(&none_leaf, &[&chain.intermediate], &pki)
        .start(&pki)
        .expect("start openssl s_server");
    let optional = OpensslServer::serving(&optional_leaf, &[&chain.intermediate], &pki)
        .args(&["-verify", "1"])
        .ca_file(&client_ca)
        .start(&pki)
        .expect("start openssl s_server -verify 1");
    let expected = [
        Expected {
            port: required.port,
            leaf_sha256: chain.leaf.sha256.clone(),
            requested: true,
            required: Some(true),
            ca_name: Some(client_ca.subject.clone()),
        },
        Expected {
            port: none.port,
            leaf_sha256: none_leaf.sha256.clone(),
            requested: false,
            required: None,
            ca_name: None,
        },
        Expected {
            port: optional.port,
            leaf_sha256: optional_leaf.sha256.clone(),
            requested: true,
            required: Some(false),
            ca_name: Some(client_ca.subject.clone()),
        },
    ];

    let config = write_config(database.dir(), &database.url);
    let service = Service::start(&config, "api,prober,scheduler");
    let token = create_token(&config, "e2e-agent");
    let address = service.address;
    let sockets: Vec<Socket> = [
        (required.port, "rustls"),
        (none.port, "s_server"),
        (optional.port, "s_server"),
    ]
    .into_iter()
    .map(|(port, process)| Socket {
        address: LOOPBACK,
        port,
        process,
    })
    .collect();
    let body = bytes(&report("e2e-host", &sockets));

    // The report, gzip-compressed, is accepted with its counts.
    let accepted = Request::post_json(REPORTS, gzip(&body))
        .header("Content-Encoding", "gzip")
        .bearer(&token)
        .send(address)
        .expect("POST the gzip report");
    assert_eq!(accepted.status, 202, "{}", accepted.describe());
    let counts = accepted.json();
    assert_eq!(counts["sockets"], 3, "{counts}");
    assert_eq!(counts["endpoints"], 3, "{counts}");

    // Then, with nothing else, the service probes and records every endpoint.
    let store = open_store(&database.url);
    let records = wait_for_observations(&*store, &expected, &service, database.kind());
    for (want, record) in expected.iter().zip(&records) {
        let observation = record.observation.as_ref().expect("waited for it");
        let context = format!("{} endpoint {}: {record:?}", database.kind(), want.port);
        assert_eq!(record.last_status, Some(ProbeStatus::Ok), "{context}");
        assert_eq!(record.hostname.as_deref(), Some("e2e-host"), "{context}");
        assert_eq!(record.tags.app.as_deref(), Some("e2e"), "{context}");
        assert_eq!(
            observation.leaf_sha256.as_deref(),
            Some(want.leaf_sha256.as_str()),
            "{context}"
        );
        assert_eq!(observation.mtls.requested, want.requested, "{context}");
        assert_eq!(observation.mtls.required, want.required, "{context}");
        if let Some(ca_name) = &want.ca_name {
            assert!(observation.mtls.ca_names.contains(ca_name), "{context}");
        }
        let certificate = runtime()
            .block_on(store.certificate(&want.leaf_sha256))
            .unwrap_or_else(|error| panic!("{context}: certificate lookup: {error}"));
        assert_eq!(certificate.certificate.sha256, want.leaf_sha256);
        assert!(
            certificate
                .served_at
                .iter()
                .any(|served| served.port == want.port && served.current),
            "{context}: {certificate:?}"
        );
    }

    // The same report twice more (plain JSON this time) leaves the same state, once the
    // service has probed everything it knows (the store may add endpoints with SNI names
    // learned from the reports and the certificates).
    let before = wait_until_settled(&*store, &service, database.kind());
    let unnamed = all_endpoints(&*store)
        .into_iter()
        .filter(|endpoint| endpoint.sni.is_none())
        .count();
    assert_eq!(unnamed, 3, "{before:?}");
    for _ in 0..2 {
        let again = Request::post_json(REPORTS, body.clone())
            .bearer(&token)
            .send(address)
            .expect("POST the same report again");
        assert_eq!(again.status, 202, "{}", again.describe());
    }
    let after = runtime().block_on(store.inventory()).expect("inventory");
    assert_eq!(before, after, "replayed reports changed the store");

    let leaves: Vec<String> = expected.iter().map(|e| e.leaf_sha256.clone()).collect();
    let every = EndpointFilter {
        include_retired: true,
        limit: 1000,
        ..EndpointFilter::default()
    };
    let every = runtime()
        .block_on(store.endpoints(&every))
        .expect("list endpoints");
    super::export::exports_match_the_store(&config, &every, &leaves);

    ingest_refuses_what_the_contract_refuses(&service, &token, &body);
}

/// Polls the store (every 100 ms, at most [`OBSERVATION_LIMIT`]) until every expected
/// endpoint has been probed; returns their records in `expected`'s order.
fn wait_for_observations(
    store: &dyn Store,
    expected: &[Expected],
    service: &Service,
    kind: &str,
) -> Vec<EndpointRecord> {
    let started = Instant::now();
    loop {
        let records: Vec<Option<EndpointRecord>> = expected
            .iter()
            .map(|want| {
                let filter = EndpointFilter {
                    address: Some(LOOPBACK),
                    port: Some(want.port),
                    ..EndpointFilter::default()
                };
                let found = runtime().block_on(store.endpoints(&filter));
                let found = found.expect("list endpoints");
                found.into_iter().find(|endpoint| endpoint.sni.is_none())
            })
            .collect();
        let probed = |record: &Option<EndpointRecord>| {
            record
                .as_ref()
                .is_some_and(|record| record.observation.is_some())
        };
        if records.iter().all(probed) {
            return records.into_iter().flatten().collect();
        }
        if started.elapsed() > OBSERVATION_LIMIT {
            panic!(
                "{kind}: endpoints not all probed after {OBSERVATION_LIMIT:?}: {records:#?}\n\
                 service log:\n{}",
                service.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every endpoint of the store (the tests hold a handful).
fn all_endpoints(store: &dyn Store) -> Vec<EndpointRecord> {
    let filter = EndpointFilter {
        limit: 1000,
        ..EndpointFilter::default()
    };
    runtime()
        .block_on(store.endpoints(&filter))
        .expect("list endpoints")
}

/// Polls (every 100 ms, at most [`OBSERVATION_LIMIT`]) until every endpoint has been
/// probed and nothing changed since the previous look; returns the inventory then.
fn wait_until_settled(store: &dyn Store, service: &Service, kind: &str) -> Inventory {
    let started = Instant::now();
    let mut previous = None;
    loop {
        let endpoints = all_endpoints(store);
        let inventory = runtime().block_on(store.inventory()).expect("inventory");
        let all_probed = endpoints.iter().all(|e| e.last_probed_at.is_some());
        if all_probed && previous == Some(inventory) {
            return inventory;
        }
        if started.elapsed() > OBSERVATION_LIMIT {
            panic!(
                "{kind}: the store did not settle in {OBSERVATION_LIMIT:?}: {endpoints:#?}\n\
                 service log:\n{}",
                service.log()
            );
        }
        previous = Some(inventory);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 401 without a valid token, 400 naming the bad field, 413 for an oversized body.
fn ingest_refuses_what_the_contract_refuses(service: &Service, token: &str, body: &[u8]) {
    let address = service.address;
    let post = |body: Vec<u8>| Request::post_json(REPORTS, body);
    let context = |what: &str| format!("{what} at {}\nlog:\n{}", service.url(), service.log());

    for request in [
        post(body.to_vec()).bearer("not-a-token"),
        post(body.to_vec()),
    ] {
        let answer = request.send(address).expect("POST without a valid token");
        assert_eq!(answer.status, 401, "{}", answer.describe());
        assert!(answer.json()["error"].is_string(), "{}", answer.describe());
    }

    let mut wrong_type = report("bad-host", &[]);
    wrong_type["sockets"] = json!([{"address": "0.0.0.0", "port": "https", "protocol": "tcp",
        "reachable": ["127.0.0.1"], "scope": "host"}]);
    let mut port_zero = wrong_type.clone();
    port_zero["sockets"][0]["port"] = json!(0);
    let mut no_hostname = report("bad-host", &[]);
    no_hostname["host"]["hostname"] = json!("");
    for (report, field) in [
        (wrong_type, "sockets[0].port"),
        (port_zero, "sockets[0].port"),
        (no_hostname, "host.hostname"),
    ] {
        let answer = post(bytes(&report))
            .bearer(token)
            .send(address)
            .expect("POST a malformed report");
        assert_eq!(answer.status, 400, "{}", context(&answer.describe()));
        assert_eq!(answer.json()["field"], field, "{}", answer.describe());
    }
    let garbage = post(b"{\"agent\": ".to_vec()).bearer(token).send(address);
    let garbage = garbage.expect("POST truncated JSON");
    assert_eq!(garbage.status, 400, "{}", garbage.describe());
    assert!(
        garbage.json()["error"].is_string(),
        "{}",
        garbage.describe()
    );

    let oversized = vec![b' '; 9 * 1024 * 1024];
    let answer = post(oversized)
        .bearer(token)
        .send(address)
        .expect("POST an oversized body");
    assert_eq!(answer.status, 413, "{}", context(&answer.describe()));

    let ready = Request::get("/readyz").send(address).expect("GET /readyz");
    assert_eq!(ready.status, 200, "{}", ready.describe());
    // Each supervised role of the process, by name.
    let roles = String::from_utf8_lossy(&ready.body);
    for role in ["api: running", "prober: running", "scheduler: running"] {
        assert!(roles.contains(role), "{role} in /readyz: {roles}");
    }
}
