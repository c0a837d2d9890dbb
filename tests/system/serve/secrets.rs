//! Secrets are never logged: the real `certfleet serve` at log level debug is handed an
//! agent token, a read token, the osquery enroll secret and a node key (right and wrong
//! ones, in every place they travel), and afterwards none of them appears in its log or
//! its stdout; `certfleet token create` prints its new token exactly once.

use serde_json::json;

use super::database::{random_hex, TestDatabase};
use super::http::{Request, Response};
use super::process::{certfleet, write_config, Service};
use super::reports::{bytes, gzip, report, Socket};

#[test]
fn no_token_or_secret_appears_in_the_logs_even_at_debug_level() {
    let database = TestDatabase::sqlite();
    let read_token = format!("rt-{}", random_hex());
    let enroll_secret = format!("es-{}", random_hex());
    let config = write_config(database.dir(), &database.url);
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    text = text.replace(
        "[server]\n",
        &format!("[server]\nread_token = {read_token:?}\n"),
    );
    text.push_str(&format!("\n[osquery]\nenroll_secret = {enroll_secret:?}\n"));
    std::fs::write(&config, text).expect("write the config");

    // The one place a token may be printed: `token create`'s own output, once.
    let config_arg = config.to_str().expect("temporary paths are UTF-8");
    let created = certfleet(&["token", "create", "--config", config_arg])
        .args(["--agent", "secret-agent"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("run certfleet token create");
    assert!(created.status.success(), "token create: {created:?}");
    let created_out = String::from_utf8_lossy(&created.stdout).into_owned();
    let created_err = String::from_utf8_lossy(&created.stderr).into_owned();
    let agent_token = created_out
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .expect("a token line")
        .trim()
        .to_owned();
    let everything = format!("{created_out}{created_err}");
    assert_eq!(
        everything.matches(&agent_token).count(),
        1,
        "token create printed its token more than once:\n{everything}"
    );

    let service =
        Service::start_with_env(&config, "api,prober,scheduler", &[("RUST_LOG", "debug")]);
    let wrong_agent_token = format!("cfa_{}{}", random_hex(), random_hex().repeat(3));
    let malformed_token = format!("not-a-token-{}", random_hex());
    let wrong_read_token = format!("rt-{}", random_hex());
    let wrong_secret = format!("es-{}", random_hex());
    let wrong_node_key = format!("cfa_{}", random_hex().repeat(4));
    let body = bytes(&report(
        "secret-host",
        &[Socket {
            address: [10, 9, 9, 9].into(),
            port: 8443,
            process: "java",
        }],
    ));
    let send = |request: Request| -> Response {
        request
            .send(service.address)
            .unwrap_or_else(|error| panic!("request failed: {error}\n{}", service.log()))
    };
    let post = |token: &str| {
        send(Request::post_json("/api/v1/reports", body.clone()).bearer(token)).status
    };

    // Agent reports: the right token, a wrong one of the right shape, a malformed one,
    // the read token (which may not ingest), and a gzip one.
    assert_eq!(post(&agent_token), 202);
    assert_eq!(post(&wrong_agent_token), 401);
    assert_eq!(post(&malformed_token), 401);
    assert_eq!(post(&read_token), 401);
    let gzipped = Request::post_json("/api/v1/reports", gzip(&body))
        .header("Content-Encoding", "gzip")
        .bearer(&agent_token);
    assert_eq!(send(gzipped).status, 202);

    // osquery: enroll with the right and a wrong secret, log with the node key in the body
    // and in the header, and with a wrong node key.
    let enroll = |secret: &str| {
        let body = json!({"enroll_secret": secret, "host_identifier": "secret-osquery-host"});
        let body = serde_json::to_vec(&body).expect("JSON");
        send(Request::post_json("/api/v1/osquery/enroll", body)).json()
    };
    let enrolled = enroll(&enroll_secret);
    let node_key = enrolled["node_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no node key: {enrolled}"))
        .to_owned();
    assert_eq!(enroll(&wrong_secret)["node_invalid"], true);
    let rows = json!([{"name": "listening_ports", "hostIdentifier": "secret-osquery-host",
        "action": "snapshot", "snapshot": [{"pid": "1", "port": "8443", "protocol": "6",
        "family": "2", "address": "10.9.9.10", "fd": "3", "socket": "1", "path": "",
        "net_namespace": "4026531840"}]}]);
    let log = |key: Option<&str>, header: Option<&str>| {
        let mut body = json!({"log_type": "result", "data": rows});
        if let Some(key) = key {
            body["node_key"] = json!(key);
        }
        let mut request = Request::post_json(
            "/api/v1/osquery/log",
            serde_json::to_vec(&body).expect("JSON"),
        );
        if let Some(header) = header {
            request = request.header("Authorization", &format!("NodeKey {header}"));
        }
        send(request)
    };
    assert_eq!(log(Some(&node_key), None).status, 200);
    assert_eq!(log(None, Some(&node_key)).status, 200);
    assert_eq!(
        log(Some(&wrong_node_key), None).json()["node_invalid"],
        true
    );

    // Reads with the read token, a wrong one, and an agent token (which may not read).
    for path in ["/api/v1/endpoints", "/", "/endpoints", "/metrics"] {
        let status = |token: &str| send(Request::get(path).bearer(token)).status;
        assert_eq!(status(&read_token), 200, "{path} with the read token");
        assert_eq!(
            status(&wrong_read_token),
            401,
            "{path} with a wrong read token"
        );
        assert_eq!(status(&agent_token), 401, "{path} with an agent token");
    }
    let log_text = service.log();
    let stdout = service.stdout();
    drop(service);
    assert!(
        log_text.contains("DEBUG"),
        "the service did not log at debug level:\n{log_text}"
    );

    let secrets = [
        ("agent token", agent_token.as_str()),
        ("agent token's secret part", &agent_token[4..]),
        ("wrong agent token", &wrong_agent_token),
        ("malformed token", &malformed_token),
        ("read token", &read_token),
        ("wrong read token", &wrong_read_token),
        ("enroll secret", &enroll_secret),
        ("wrong enroll secret", &wrong_secret),
        ("node key", &node_key),
        ("node key's secret part", &node_key[4.min(node_key.len())..]),
        ("wrong node key", &wrong_node_key),
    ];
    for (output, text) in [
        ("serve log (stderr)", &log_text),
        ("serve stdout", &stdout),
        ("token create stderr", &created_err),
    ] {
        for (name, secret) in secrets {
            assert!(
                !text.contains(secret),
                "the {name} appears in the {output}:\n{text}"
            );
        }
    }
    for (name, secret) in &secrets[2..] {
        assert!(
            !created_out.contains(secret),
            "the {name} appears in token create's stdout"
        );
    }
    eprintln!(
        "secrets: {} secrets checked against {} bytes of debug log and {} bytes of stdout",
        secrets.len(),
        log_text.len(),
        stdout.len()
    );
}
