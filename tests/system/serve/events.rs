//! Change events end to end (docs/events.md): the real `certfleet serve` with `[events]`
//! publishes to a private `nats-server` with JetStream. Agent reports, probes of real TLS
//! servers and a certificate rotation make events; certfleet is killed (SIGKILL) while it
//! publishes and started again; nats-server is killed while certfleet publishes, a report
//! is ingested while it is down (events wait in the outbox), and it is started again. Then
//! the stream is read back: every expected event is there exactly once (by `Nats-Msg-Id`,
//! by id and by content), none is missing, and the outbox is empty. On SQLite and on
//! PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use certfleet_testkit::nats::{nats_server_or_skip, NatsServer};
use serde_json::Value;

use super::database::{open_store, runtime, TestDatabase};
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{post_report, report, Socket};
use crate::pki::{Pki, Spec};
use crate::tls_server::TlsServer;

/// Bound on the service publishing what it should (a few seconds when things work).
const LIMIT: Duration = Duration::from_secs(120);
/// Sockets of each bulk report (closed ports: they make discovery events, no probe ones).
const BULK: u16 = 1_500;
const STREAM: &str = "CERTFLEET_TEST";

#[test]
fn every_change_is_in_the_stream_once_across_restarts_on_sqlite() {
    events_once_across_restarts(TestDatabase::sqlite());
}

#[test]
fn every_change_is_in_the_stream_once_across_restarts_on_postgres() {
    events_once_across_restarts(TestDatabase::postgres());
}

#[test]
fn a_bad_nats_url_is_refused_with_a_clear_error() {
    let database = TestDatabase::sqlite();
    let config = write_config(database.dir(), &database.url);
    for url in [
        "http://127.0.0.1:4222",
        "nats://127.0.0.1:notaport",
        "nats://",
    ] {
        let config = config.to_str().expect("UTF-8 path");
        let mut command = certfleet(&["serve", "--config", config, "--roles", "events"]);
        let output = refused_output(command.env("CERTFLEET_EVENTS__NATS_URL", url));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{url} was accepted: {stderr}");
        assert!(stderr.contains("events.nats_url"), "{url}: {stderr}");
    }
    // The events role without [events]: said plainly.
    let config = config.to_str().expect("UTF-8 path");
    let output = refused_output(&mut certfleet(&[
        "serve", "--config", config, "--roles", "events",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("events.nats_url"), "{stderr}");
}

/// Runs `command`, which must exit on its own (a refused configuration): one still
/// running after 30 s accepted it and is killed, failing the test.
fn refused_output(command: &mut std::process::Command) -> std::process::Output {
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run certfleet serve");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait for certfleet").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect its output");
            panic!(
                "certfleet serve accepted the configuration and ran:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect its output")
}

/// The environment that turns events on, publishing in small batches so that a restart
/// falls in the middle, and probes every few seconds so that a rotation is seen soon.
fn events_env(nats: &NatsServer) -> Vec<(&'static str, String)> {
    vec![
        ("CERTFLEET_EVENTS__NATS_URL", nats.url()),
        ("CERTFLEET_EVENTS__STREAM", STREAM.into()),
        ("CERTFLEET_EVENTS__SUBJECT_PREFIX", "cftest".into()),
        ("CERTFLEET_EVENTS__BATCH", "25".into()),
        ("CERTFLEET_EVENTS__POLL", "100ms".into()),
        ("CERTFLEET_EVENTS__ACK_TIMEOUT", "2s".into()),
        ("CERTFLEET_PROBE__INTERVAL", "3s".into()),
        ("CERTFLEET_PROBE__MIN_INTERVAL", "1s".into()),
        ("CERTFLEET_PROBE__LIFETIME_FRACTION", "0".into()),
    ]
}

fn start(config: &Path, env: &[(&'static str, String)]) -> Service {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Service::start_with_env(config, "api,prober,scheduler,events", &env)
}

/// One message of the stream.
struct Message {
    msg_id: String,
    subject: String,
    event: Value,
}

/// Every message of the stream, in stream order (empty while the stream does not exist).
fn read_stream(nats: &NatsServer) -> Vec<Message> {
    runtime().block_on(async {
        let Ok(client) = async_nats::connect(nats.url()).await else {
            return Vec::new();
        };
        let jetstream = async_nats::jetstream::new(client);
        let Ok(mut stream) = jetstream.get_stream(STREAM).await else {
            return Vec::new();
        };
        let Ok(info) = stream.info().await else {
            return Vec::new();
        };
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut messages = Vec::new();
        for sequence in first.max(1)..=last {
            let message = stream
                .get_raw_message(sequence)
                .await
                .unwrap_or_else(|error| panic!("stream message {sequence}: {error}"));
            let msg_id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default();
            let event: Value = serde_json::from_slice(&message.payload).expect("an event is JSON");
            messages.push(Message {
                msg_id,
                subject: message.subject.to_string(),
                event,
            });
        }
        messages
    })
}

/// How many messages the stream holds (0 while it does not exist).
fn stream_len(nats: &NatsServer) -> u64 {
    runtime().block_on(async {
        let Ok(client) = async_nats::connect(nats.url()).await else {
            return 0;
        };
        let jetstream = async_nats::jetstream::new(client);
        match jetstream.get_stream(STREAM).await {
            Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
            Err(_) => 0,
        }
    })
}

fn backlog(url: &str) -> u64 {
    let store = open_store(url);
    runtime()
        .block_on(store.event_backlog())
        .expect("the backlog")
}

/// Sockets on closed ports of `address`.
fn bulk(address: Ipv4Addr, first_port: u16) -> Vec<Socket> {
    (0..BULK)
        .map(|offset| Socket {
            address: IpAddr::V4(address),
            port: first_port + offset,
            process: "bulk",
        })
        .collect()
}

/// The endpoint of a discovery event as (address, port, sni).
fn endpoint_key(event: &Value) -> (String, u64, Option<String>) {
    let endpoint = &event["endpoint"];
    (
        endpoint["address"].as_str().unwrap_or_default().to_owned(),
        endpoint["port"].as_u64().unwrap_or_default(),
        endpoint["sni"].as_str().map(str::to_owned),
    )
}

fn events_once_across_restarts(database: TestDatabase) {
    if !nats_server_or_skip() {
        return;
    }
    let kind = database.kind();
    let mut nats = NatsServer::start();
    let pki = Pki::new();
    let leaf = |name: &str| pki.issue(name, Spec::leaf(name, &[name]), None);
    let (first, second, rotated) = (
        leaf("one.events.test"),
        leaf("two.events.test"),
        leaf("one-next.events.test"),
    );
    let serve = |cert: &crate::pki::Cert, port: u16| {
        TlsServer::serving(&[cert], cert)
            .at(SocketAddr::from(([127, 0, 0, 1], port)))
            .start()
            .expect("start a TLS server")
    };
    let one = serve(&first, 0);
    let one_port = one.port;
    let two = serve(&second, 0);

    let config = write_config(database.dir(), &database.url);
    let env = events_env(&nats);
    let mut service = start(&config, &env);
    let token = create_token(&config, "events-agent");
    let tls_sockets = [(one_port, "one"), (two.port, "two")].map(|(port, process)| Socket {
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        process,
    });
    let answer = post_report(&service, &token, &report("events-tls", &tls_sockets));
    assert_eq!(answer.status, 202, "{}", answer.describe());

    // A bulk report, and certfleet killed while it publishes its events.
    let sockets = bulk(Ipv4Addr::new(127, 0, 0, 21), 20_000);
    let answer = post_report(&service, &token, &report("events-bulk-1", &sockets));
    assert_eq!(answer.status, 202, "{}", answer.describe());
    let before = stream_len(&nats);
    certfleet_testkit::wait_until(
        "the first of the bulk report's events published",
        LIMIT,
        &|| service.log(),
        || stream_len(&nats) > before,
    );
    service.kill();
    let published_before_restart = stream_len(&nats);
    let service = start(&config, &env);

    // Another bulk report, and nats-server killed while certfleet publishes it.
    let sockets = bulk(Ipv4Addr::new(127, 0, 0, 22), 20_000);
    let answer = post_report(&service, &token, &report("events-bulk-2", &sockets));
    assert_eq!(answer.status, 202, "{}", answer.describe());
    certfleet_testkit::wait_until(
        "more events published after the restart",
        LIMIT,
        &|| service.log(),
        || stream_len(&nats) > published_before_restart,
    );
    nats.stop();
    // NATS is down: ingest goes on, its events wait in the outbox.
    let sockets = bulk(Ipv4Addr::new(127, 0, 0, 23), 20_000);
    let answer = post_report(&service, &token, &report("events-bulk-3", &sockets));
    assert_eq!(
        answer.status,
        202,
        "ingest while NATS is down: {}",
        answer.describe()
    );
    assert!(
        backlog(&database.url) >= u64::from(BULK),
        "{kind}: the third report's events wait in the outbox"
    );
    nats.start_again();

    // The leaf of one server rotates; the prober sees it at its next probe.
    certfleet_testkit::wait_until(
        "the first certificates published",
        LIMIT,
        &|| service.log(),
        || {
            let stream = read_stream(&nats);
            [&first.sha256, &second.sha256].iter().all(|sha256| {
                stream.iter().any(|m| {
                    m.event["kind"] == "certificate.first_seen"
                        && m.event["certificate"]["sha256"] == sha256.as_str()
                })
            })
        },
    );
    drop(one);
    // The old server's listener closes as its task ends: bind again until the port is free.
    let mut one_next = None;
    certfleet_testkit::wait_until(
        "the rotated server to bind the old port",
        Duration::from_secs(30),
        &|| format!("port {one_port}"),
        || {
            one_next = TlsServer::serving(&[&rotated], &rotated)
                .at(SocketAddr::from(([127, 0, 0, 1], one_port)))
                .start()
                .ok();
            one_next.is_some()
        },
    );
    certfleet_testkit::wait_until(
        "the rotation published and the outbox drained",
        LIMIT,
        &|| service.log(),
        || {
            read_stream(&nats)
                .iter()
                .any(|m| m.event["kind"] == "certificate.rotated")
                && backlog(&database.url) == 0
        },
    );
    let messages = read_stream(&nats);
    let context = format!("{kind}; service log:\n{}", service.log());

    // Exactly once: by Nats-Msg-Id, by event id, by content.
    let mut msg_ids = BTreeSet::new();
    let mut by_content = BTreeSet::new();
    for message in &messages {
        let event = &message.event;
        assert!(
            msg_ids.insert(message.msg_id.clone()),
            "{} twice; {context}",
            message.msg_id
        );
        assert_eq!(
            event["id"],
            message.msg_id.as_str(),
            "the id is the Nats-Msg-Id"
        );
        let kind = event["kind"].as_str().unwrap_or_default();
        assert_eq!(message.subject, format!("cftest.events.{kind}"));
        let mut content = event.clone();
        if let Some(object) = content.as_object_mut() {
            object.remove("id");
            object.remove("at");
        }
        assert!(
            by_content.insert(content.to_string()),
            "{event} twice; {context}"
        );
    }
    let mut discovered = BTreeMap::new();
    let mut first_seen = BTreeSet::new();
    let mut rotations = Vec::new();
    for message in &messages {
        let event = &message.event;
        match event["kind"].as_str().unwrap_or_default() {
            "endpoint.discovered" => {
                let key = endpoint_key(event);
                assert!(
                    discovered.insert(key.clone(), ()).is_none(),
                    "{key:?} twice"
                );
            }
            "certificate.first_seen" => {
                let sha256 = event["certificate"]["sha256"].as_str().unwrap_or_default();
                assert!(
                    first_seen.insert(sha256.to_owned()),
                    "{sha256} first seen twice"
                );
            }
            "certificate.rotated" => rotations.push(event.clone()),
            _ => {}
        }
    }
    // None missing: every socket reported, every certificate, the one rotation.
    for (address, count) in [
        ([127, 0, 0, 21], BULK),
        ([127, 0, 0, 22], BULK),
        ([127, 0, 0, 23], BULK),
    ] {
        let address = Ipv4Addr::from(address).to_string();
        let found = discovered
            .keys()
            .filter(|(a, _, sni)| *a == address && sni.is_none())
            .count();
        assert_eq!(
            found,
            usize::from(count),
            "discovered at {address}; {context}"
        );
    }
    for port in [one_port, two.port] {
        let key = ("127.0.0.1".to_owned(), u64::from(port), None);
        assert!(
            discovered.contains_key(&key),
            "{key:?} not discovered; {context}"
        );
    }
    for cert in [&first, &second, &rotated] {
        assert!(
            first_seen.contains(&cert.sha256),
            "{} not first seen; {context}",
            cert.sha256
        );
    }
    // The socket's own rotation (the names under it rotate too: one server, one leaf).
    rotations.retain(|event| event["endpoint"]["sni"].is_null());
    assert_eq!(rotations.len(), 1, "{rotations:?}; {context}");
    assert_eq!(rotations[0]["previous"]["sha256"], first.sha256.as_str());
    assert_eq!(
        rotations[0]["certificate"]["sha256"],
        rotated.sha256.as_str()
    );
    assert_eq!(rotations[0]["endpoint"]["port"], u64::from(one_port));
    // The service still runs: probes of the bulk sockets may add events after the read
    // above (seen on a loaded CI machine), so the outbox is asked to drain again rather
    // than to be empty at this instant.
    certfleet_testkit::wait_until("the outbox drained again", LIMIT, &|| service.log(), || {
        backlog(&database.url) == 0
    });
}
