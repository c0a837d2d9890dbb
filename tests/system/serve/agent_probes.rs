//! Agent-side probing (issue 17), end to end on SQLite and PostgreSQL: a loopback-only
//! `openssl s_server` the centre may not reach (`probe.allow` does not cover loopback) is
//! recorded through the agent's own probe (`certfleet agent --once`, `probe_local`), under
//! its host; probe now answers 409 for it. Then the hostile cases: another host's report
//! with a result for an address it does not own (refused, the rest kept), malformed and
//! oversized `probes` (400), no token (401); none changes what is recorded for the first.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::database::TestDatabase;
use super::http::Request;
use super::probe_now::operator_token;
use super::process::{certfleet, create_token, write_config, Service};
use super::reports::{post_report, report};
use crate::openssl_server::OpensslServer;
use crate::pki::{Pki, Spec};

#[test]
fn a_loopback_listener_is_recorded_through_the_agents_own_probe_on_sqlite() {
    agent_probes(TestDatabase::sqlite());
}

#[test]
fn a_loopback_listener_is_recorded_through_the_agents_own_probe_on_postgres() {
    agent_probes(TestDatabase::postgres());
}

/// The agent-probed endpoints on 127.0.0.1:`port` (one per host: `127.0.0.1%<host id>`).
fn agent_probed(service: &Service, port: u16) -> Vec<Value> {
    let path = format!("/api/v1/endpoints?port={port}&limit=100");
    let answer = Request::get(&path).send(service.address).expect("GET");
    assert_eq!(answer.status, 200, "{}", answer.describe());
    answer.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|item| {
            item["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1%"))
        })
        .collect()
}

/// One line of the probe JSON contract, as a hostile agent might write it.
fn probe_line(target: &str, status: &str, sha256: &str) -> Value {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("formats");
    let chain = if status == "ok" {
        json!([{"sha256": sha256, "serial": "1", "subject": "CN=forged", "issuer": "CN=forged",
                "not_before": "2026-01-01T00:00:00Z", "not_after": "2099-01-01T00:00:00Z",
                "sans": ["forged.test"], "key": {"type": "ecdsa", "bits": 256},
                "signature_algorithm": "ecdsa-with-SHA256", "is_ca": false,
                "self_signed": true}])
    } else {
        json!([])
    };
    json!({"target": target, "address": target, "sni": null, "status": status,
           "error": null, "probed_at": now, "elapsed_ms": 3, "starttls": null,
           "tls": null, "mtls": null, "chain": chain, "findings": []})
}

fn agent_probes(database: TestDatabase) {
    let pki = Pki::new();
    let leaf = pki.issue(
        "vault",
        Spec::leaf("vault.internal", &["vault.internal"]),
        None,
    );
    let server = OpensslServer::serving(&leaf, &[], &pki)
        .loopback_only()
        .start(&pki)
        .expect("start openssl s_server on 127.0.0.1");
    let config = write_config(database.dir(), &database.url);
    let text = std::fs::read_to_string(&config).expect("read the config");
    // The centre may probe nothing on this machine: only the agent reaches loopback.
    let text = text.replace("allow = [\"127.0.0.0/8\"]", "allow = [\"192.0.2.0/24\"]");
    std::fs::write(&config, text).expect("write the config");
    let service = Service::start(&config, "api,prober");
    let token = create_token(&config, "probe-host");
    let machine_id = database.dir().join("machine-id");
    std::fs::write(&machine_id, "00112233445566778899aabbccddeeff\n").expect("machine id");

    // A shared certfleet.toml: the agent reads its [agent] section and leaves the rest.
    let output = certfleet(&["agent", "--once", "--config"])
        .arg(&config)
        .env("CERTFLEET_AGENT__SERVER", service.url())
        .env("CERTFLEET_AGENT__TOKEN", &token)
        .env("CERTFLEET_AGENT__MACHINE_ID_FILE", &machine_id)
        .env("CERTFLEET_AGENT__HOSTNAME", "probe-host")
        .env("CERTFLEET_AGENT__SPOOL_DIR", "")
        .env("CERTFLEET_AGENT__SPLAY", "0s")
        .env("CERTFLEET_AGENT__PROBE_LOCAL", "true")
        .env("CERTFLEET_AGENT__PROBE_CONCURRENCY", "8")
        .env("CERTFLEET_AGENT__PROBE_TIMEOUT", "2s")
        .output()
        .expect("run certfleet agent --once");
    assert!(
        output.status.success(),
        "{output:?}\n{}\n{}",
        service.log(),
        server.log()
    );

    let recorded = agent_probed(&service, server.port);
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    let mine = &recorded[0];
    assert_eq!(mine["hostname"], "probe-host");
    assert_eq!(mine["last_status"], "ok", "{mine:#}");
    assert_eq!(mine["observation"]["leaf_sha256"], leaf.sha256.as_str());

    // Probe now cannot promise a prober's probe: 409, with the reason.
    let operator = operator_token(&config, "ops");
    let id = mine["id"].as_i64().expect("id");
    let asked = Request::post_json(&format!("/api/v1/endpoints/{id}/probe"), b"{}".to_vec())
        .bearer(&operator)
        .send(service.address)
        .expect("POST probe");
    assert_eq!(asked.status, 409, "{}", asked.describe());
    assert!(
        asked.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("probe-host")),
        "{}",
        asked.describe()
    );

    // Another host: the same loopback port with another certificate (its own loopback),
    // and a result for an address it does not own.
    let other_token = create_token(&config, "other-host");
    let mut hostile = report("other-host", &[]);
    hostile["sockets"] = json!([{"address": "127.0.0.1", "port": server.port,
        "protocol": "tcp", "reachable": [], "scope": "loopback"}]);
    let own_target = format!("127.0.0.1:{}", server.port);
    let forged = "ab".repeat(32);
    hostile["probes"] = json!([
        probe_line(&own_target, "ok", &forged),
        probe_line("10.9.9.9:443", "ok", &forged),
    ]);
    let answer = post_report(&service, &other_token, &hostile);
    assert_eq!(answer.status, 202, "{}", answer.describe());
    let counts = answer.json();
    assert_eq!(
        (counts["probes"].as_u64(), counts["probes_refused"].as_u64()),
        (Some(1), Some(1))
    );

    // Malformed and oversized probes: 400 naming the field; no token: 401.
    let mut malformed = hostile.clone();
    malformed["probes"][0]["status"] = json!("bogus");
    let answer = post_report(&service, &other_token, &malformed);
    assert_eq!(answer.status, 400, "{}", answer.describe());
    assert!(
        answer.describe().contains("probes"),
        "{}",
        answer.describe()
    );
    let mut oversized = hostile.clone();
    oversized["probes"] = Value::Array(vec![probe_line(&own_target, "refused", ""); 4097]);
    let answer = post_report(&service, &other_token, &oversized);
    assert_eq!(answer.status, 400, "{}", answer.describe());
    assert!(answer.describe().contains("4096"), "{}", answer.describe());
    let anonymous = Request::post_json(
        "/api/v1/reports",
        serde_json::to_vec(&hostile).expect("json"),
    )
    .send(service.address)
    .expect("POST");
    assert_eq!(anonymous.status, 401, "{}", anonymous.describe());

    // Each host keeps its own loopback: the first host's record is untouched.
    let recorded = agent_probed(&service, server.port);
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    let first = recorded
        .iter()
        .find(|e| e["hostname"] == "probe-host")
        .expect("the first host's endpoint");
    assert_eq!(first["observation"]["leaf_sha256"], leaf.sha256.as_str());
    let other = recorded
        .iter()
        .find(|e| e["hostname"] == "other-host")
        .expect("the other host's endpoint");
    assert_eq!(other["observation"]["leaf_sha256"], forged.as_str());
    assert_ne!(first["address"], other["address"]);
}
