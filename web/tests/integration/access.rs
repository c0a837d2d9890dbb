//! Who may do what: with a read token configured, every read needs it (agent tokens do
//! not read); ingest needs an agent token (the read token does not ingest); health and
//! the OpenAPI document are open.

use crate::support::harness::READ_TOKEN;
use crate::support::http::send;
use crate::support::TestApp;

crate::on_both_backends!(read_token: true;
    reads_need_the_read_token_and_agent_tokens_cannot_read,
    ingest_needs_an_agent_token_and_validates_the_report,
);

const READS: [&str; 12] = [
    "/api/v1/certificates?hostname=api.example.test",
    "/api/v1/endpoints",
    "/api/v1/sockets",
    "/api/v1/mtls/summary",
    "/api/v1/overview",
    "/api/v1/notifications",
    "/api/v1/probers",
    "/",
    "/search?q=api.example.test",
    "/endpoints",
    "/probers",
    "/metrics",
];

async fn reads_need_the_read_token_and_agent_tokens_cannot_read(app: TestApp) {
    let agent = format!("Bearer {}", app.agent_token);
    let wrong = format!("Bearer {}x", READ_TOKEN);
    let right = format!("Bearer {READ_TOKEN}");
    for path in READS {
        for (who, headers) in [
            ("nobody", vec![]),
            ("a wrong token", vec![("Authorization", wrong.as_str())]),
            ("an agent token", vec![("Authorization", agent.as_str())]),
            ("a malformed header", vec![("Authorization", READ_TOKEN)]),
        ] {
            let response = app.get_with(path, &headers).await;
            assert_eq!(response.status, 401, "{path} by {who}: {}", response.text());
            assert_eq!(response.header("www-authenticate"), Some("Bearer"));
            assert!(response.json()["error"].is_string());
        }
        let allowed = app
            .get_with(path, &[("Authorization", right.as_str())])
            .await;
        assert_eq!(allowed.status, 200, "{path}: {}", allowed.text());
    }
    for open in ["/healthz", "/readyz", "/api/v1/openapi.json"] {
        assert_eq!(app.get_with(open, &[]).await.status, 200, "{open} is open");
    }
    // `/readyz` names each role; one that failed makes the process not ready.
    let ready = app.get_with("/readyz", &[]).await;
    assert_eq!(ready.text(), "ready\napi: running\n");
    app.roles.running("prober");
    app.roles.stopped("prober", "failed");
    let failed = app.get_with("/readyz", &[]).await;
    assert_eq!(failed.status, 503, "{}", failed.text());
    assert_eq!(failed.text(), "not ready\napi: running\nprober: failed\n");
}

async fn ingest_needs_an_agent_token_and_validates_the_report(app: TestApp) {
    let report = serde_json::json!({
        "agent": {"version": "0.1.0"}, "collected_at": "2026-01-01T00:00:00Z",
        "host": {"hostname": "new-1", "machine_id": "m-new", "addresses": ["10.9.0.1"],
                 "tags": {"app": "new"}},
        "sockets": [{"address": "10.9.0.1", "port": 443, "protocol": "tcp", "netns": null,
                     "process": "nginx", "container": null, "reachable": ["10.9.0.1"],
                     "scope": "host"}]
    });
    let body = serde_json::to_vec(&report).expect("JSON");
    let agent = format!("Bearer {}", app.agent_token);
    let read = format!("Bearer {READ_TOKEN}");
    let json = ("Content-Type", "application/json");
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let address = app.address;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send(address, "POST", "/api/v1/reports", &headers, &body).await
        }
    };
    let nobody = post(vec![(json.0, json.1.into())], body.clone()).await;
    assert_eq!(nobody.status, 401);
    let reader = post(
        vec![(json.0, json.1.into()), ("Authorization", read.clone())],
        body.clone(),
    )
    .await;
    assert_eq!(reader.status, 401, "the read token does not ingest");
    let accepted = post(
        vec![(json.0, json.1.into()), ("Authorization", agent.clone())],
        body.clone(),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    assert_eq!(accepted.json()["endpoints"], 1);
    let mut broken = report.clone();
    broken["sockets"][0]["port"] = serde_json::json!("https");
    let bad = post(
        vec![(json.0, json.1.into()), ("Authorization", agent)],
        serde_json::to_vec(&broken).expect("JSON"),
    )
    .await;
    assert_eq!(bad.bad_field(), "sockets[0].port");
}
