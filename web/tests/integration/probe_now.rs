//! Probe now: `POST /api/v1/endpoints/{id}/probe` with its token rules and rate limit, the
//! endpoint page's button, and the signed links of the digests. Every refusal is checked
//! to have asked for nothing: the endpoint can still be asked for afterwards (a request
//! would have started the rate-limit window), and no prober lease takes it.

use certfleet_model::probe_link::LinkKey;
use certfleet_store::EndpointId;
use time::{Duration, OffsetDateTime};

use crate::support::harness::{LINK_SECRET, READ_TOKEN};
use crate::support::http::{send, Response};
use crate::support::TestApp;

crate::on_both_backends!(read_token: true;
    only_operator_tokens_ask_for_probes_once_per_window,
    the_page_button_asks_with_an_operator_token,
    signed_links_ask_only_when_genuine_and_posted,
);

async fn probe(app: &TestApp, id: &str, token: Option<&str>, body: &[u8]) -> Response {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|value| ("Authorization", value.as_str()))
        .collect();
    let path = format!("/api/v1/endpoints/{id}/probe");
    send(app.address, "POST", &path, &headers, body).await
}

/// What a prober's next lease takes.
async fn leased(app: &TestApp) -> Vec<EndpointId> {
    let leases = app
        .store
        .lease_due_endpoints("test-prober", 100, Duration::minutes(5))
        .await
        .expect("lease");
    leases.iter().map(|lease| lease.id).collect()
}

async fn only_operator_tokens_ask_for_probes_once_per_window(app: TestApp) {
    let api = app.fleet.api_endpoint;
    let id = api.0.to_string();
    // The seeded fleet's never-probed endpoints are due: a prober takes them first.
    leased(&app).await;
    let unknown = format!("cfo_{}", "0".repeat(64));
    for (who, token, status) in [
        ("nobody", None, 401),
        ("an unknown token", Some(unknown.as_str()), 401),
        ("a malformed token", Some("not a token"), 401),
        ("the read token", Some(READ_TOKEN), 403),
        ("an agent token", Some(app.agent_token.as_str()), 403),
    ] {
        let answer = probe(&app, &id, token, b"").await;
        assert_eq!(answer.status, status, "{who}: {}", answer.text());
        assert!(answer.json()["error"].is_string(), "{who}");
    }
    assert_eq!(
        probe(&app, &id, None, b"").await.header("www-authenticate"),
        Some("Bearer")
    );
    assert!(leased(&app).await.is_empty(), "nothing was asked for");

    let operator = Some(app.operator_token.as_str());
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let answer = probe(&app, bad, operator, b"").await;
        assert_eq!(answer.bad_field(), "id", "{bad}");
    }
    let answer = probe(&app, "987654", operator, b"").await;
    assert_eq!(answer.status, 404, "{}", answer.text());
    let answer = probe(&app, &id, operator, &[b'x'; 4096]).await;
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(leased(&app).await.is_empty(), "nothing was asked for");

    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let answer = probe(&app, &id, operator, b"{}").await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["endpoint"], api.0);
    let time = |field: &str| {
        let text = body[field].as_str().expect("an RFC 3339 time");
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339")
    };
    assert!(time("requested_at") >= before, "{body}");
    assert!(time("expected_by") > time("requested_at"), "{body}");
    assert_eq!(leased(&app).await, vec![api], "the next lease takes it");

    let again = probe(&app, &id, operator, b"").await;
    assert_eq!(again.status, 429, "{}", again.text());
    let retry_after: u64 = again
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(leased(&app).await.is_empty(), "not requested twice");
    // Another endpoint has its own window.
    let shop = app.fleet.shop_endpoint;
    let answer = probe(&app, &shop.0.to_string(), operator, b"").await;
    assert_eq!(answer.status, 202, "{}", answer.text());

    // An operator token does not report.
    let report = send(
        app.address,
        "POST",
        "/api/v1/reports",
        &[("Authorization", &format!("Bearer {}", app.operator_token))],
        b"{}",
    )
    .await;
    assert_eq!(report.status, 403, "{}", report.text());
}

async fn button(app: &TestApp, id: EndpointId, form: &str) -> Response {
    let path = format!("/endpoints/{}/probe", id.0);
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    send(app.address, "POST", &path, &headers, form.as_bytes()).await
}

async fn the_page_button_asks_with_an_operator_token(app: TestApp) {
    leased(&app).await;
    let api = app.fleet.api_endpoint;
    let page = app.page(&format!("/endpoints/{}", api.0)).await;
    assert!(
        page.contains(&format!("action=\"/endpoints/{}/probe\"", api.0))
            && page.contains("name=\"token\"")
            && page.contains("Probe now"),
        "{page}"
    );
    let agent = format!("token={}", app.agent_token);
    let read = format!("token={READ_TOKEN}");
    for (who, form, status) in [
        ("no token", "token=", 401),
        ("a form without the token", "other=1", 400),
        ("the read token", read.as_str(), 403),
        ("an agent token", agent.as_str(), 403),
    ] {
        let answer = button(&app, api, form).await;
        assert_eq!(answer.status, status, "{who}: {}", answer.text());
        assert!(answer.text().contains("<html"), "{who}: an error page");
    }
    let huge = format!("token={}", "a".repeat(4096));
    assert_eq!(button(&app, api, &huge).await.status, 413);
    assert!(leased(&app).await.is_empty(), "nothing was asked for");

    let operator = format!("token={}", app.operator_token);
    let answer = button(&app, api, &operator).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(answer.text().contains("A probe of"), "{}", answer.text());
    assert!(answer.text().contains("10.1.0.10:443"), "{}", answer.text());
    let again = button(&app, api, &operator).await;
    assert_eq!(again.status, 429, "{}", again.text());
    assert!(again.header("retry-after").is_some());
    assert_eq!(leased(&app).await, vec![api], "asked for once");
}

/// A link's query, signed with the app's secret (or another).
fn link(secret: &str, id: EndpointId, expires: OffsetDateTime) -> String {
    LinkKey::new(secret.as_bytes())
        .expect("a long secret")
        .query(id.0, expires)
}

async fn signed_links_ask_only_when_genuine_and_posted(app: TestApp) {
    leased(&app).await;
    let api = app.fleet.api_endpoint;
    let shop = app.fleet.shop_endpoint;
    let now = OffsetDateTime::now_utc();
    let genuine = link(LINK_SECRET, api, now + Duration::days(7));

    // GET shows what the link asks and a button, and asks nothing (mail scanners open it).
    let shown = app.get_with(&format!("/probe-link?{genuine}"), &[]).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    let text = shown.text();
    assert!(
        text.contains("10.1.0.10:443") && text.contains("Check again"),
        "{text}"
    );
    assert!(
        text.contains("method=\"post\" action=\"/probe-link\""),
        "{text}"
    );
    assert!(leased(&app).await.is_empty(), "a GET asks for nothing");

    let post = |query: String| {
        let address = app.address;
        async move {
            let headers = [("Content-Type", "application/x-www-form-urlencoded")];
            send(address, "POST", "/probe-link", &headers, query.as_bytes()).await
        }
    };
    let other_endpoint = genuine.replacen(
        &format!("endpoint={}", api.0),
        &format!("endpoint={}", shop.0),
        1,
    );
    let expired = link(LINK_SECRET, api, now - Duration::seconds(5));
    let foreign = link(
        "another-secret-not-this-servers-0123",
        api,
        now + Duration::days(7),
    );
    let mut flipped = genuine.clone();
    let last = if flipped.ends_with('0') { '1' } else { '0' };
    flipped.pop();
    flipped.push(last);
    let cases = [
        ("another endpoint under the signature", other_endpoint, 403),
        ("a changed signature", flipped, 403),
        ("another server's secret", foreign, 403),
        ("an expired link", expired, 410),
        ("no signature", format!("endpoint={}&expires=1", api.0), 400),
        (
            "a malformed expiry",
            genuine.replacen("expires=", "expires=x", 1),
            400,
        ),
        ("nothing", String::new(), 400),
    ];
    for (what, query, status) in &cases {
        let shown = app.get_with(&format!("/probe-link?{query}"), &[]).await;
        assert_eq!(shown.status, *status, "GET {what}: {}", shown.text());
        assert!(shown.text().contains("<html"), "GET {what}: an error page");
        let posted = post(query.clone()).await;
        assert_eq!(posted.status, *status, "POST {what}: {}", posted.text());
    }
    let huge = format!("{genuine}&pad={}", "a".repeat(4096));
    assert_eq!(post(huge).await.status, 413);
    assert!(
        leased(&app).await.is_empty(),
        "no refused link asked for anything"
    );

    let asked = post(genuine.clone()).await;
    assert_eq!(asked.status, 202, "{}", asked.text());
    let again = post(genuine).await;
    assert_eq!(again.status, 429, "the same rate limit: {}", again.text());
    assert!(again.header("retry-after").is_some());
    assert_eq!(leased(&app).await, vec![api]);
}
