//! The saved fleet overview: a process that starts answers its first request with the
//! overview another process saved (when under an hour old) while it computes its own in
//! the background, then saves that one. An older or unreadable saved overview is not
//! shown: the first request waits for a fresh one.

use std::net::SocketAddr;
use std::time::Duration;

use certfleet_store::FleetOverview;
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::harness::TestApp;
use crate::support::http;

crate::on_both_backends!(
    the_first_request_after_a_start_answers_with_the_saved_overview,
    an_hour_old_saved_overview_is_not_shown,
);

/// Marks an overview as another process's: a host count the seeded fleet does not have.
const MARKED_HOSTS: u64 = 424_242;

async fn overview_at(app: &TestApp, address: SocketAddr) -> Value {
    let headers: Vec<(&str, String)> = app
        .read_token
        .map(|token| ("Authorization", format!("Bearer {token}")))
        .into_iter()
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let response = http::send(address, "GET", "/api/v1/overview", &headers, b"").await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

async fn marked(app: &TestApp, age: time::Duration) -> FleetOverview {
    let mut saved = app.store.fleet_overview().await.expect("overview");
    assert_ne!(saved.hosts, MARKED_HOSTS);
    saved.hosts = MARKED_HOSTS;
    saved.computed_at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns")
        - age;
    app.store.save_overview(&saved).await.expect("saves");
    saved
}

async fn the_first_request_after_a_start_answers_with_the_saved_overview(app: TestApp) {
    let real = app.store.fleet_overview().await.expect("overview").hosts;
    let saved = marked(&app, time::Duration::minutes(5)).await;
    // What is saved reads back whole.
    let read_back = app.store.saved_overview().await.expect("reads");
    assert_eq!(read_back.as_ref(), Some(&saved));

    let started = app.start_another(Duration::from_secs(60)).await;
    let first = overview_at(&app, started).await;
    assert_eq!(first["hosts"], MARKED_HOSTS, "the saved overview: {first}");
    let computed_at = first["computed_at"].as_str().expect("computed_at");
    let computed_at =
        OffsetDateTime::parse(computed_at, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert_eq!(
        computed_at, saved.computed_at,
        "it says when it was computed"
    );

    // The first request started the process's own; once done, it answers and is saved.
    let mut answered = first;
    for _ in 0..200 {
        answered = overview_at(&app, started).await;
        if answered["hosts"] != MARKED_HOSTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered["hosts"], real, "the fresh overview replaces it");
    let saved_now = app.store.saved_overview().await.expect("reads");
    assert_eq!(saved_now.map(|o| o.hosts), Some(real), "and is saved");
}

async fn an_hour_old_saved_overview_is_not_shown(app: TestApp) {
    let real = app.store.fleet_overview().await.expect("overview").hosts;
    marked(&app, time::Duration::minutes(61)).await;
    let started = app.start_another(Duration::from_secs(60)).await;
    let first = overview_at(&app, started).await;
    assert_eq!(first["hosts"], real, "computed, not the saved one: {first}");
}
