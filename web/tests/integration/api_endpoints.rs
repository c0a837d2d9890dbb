//! `GET /api/v1/endpoints`, `/endpoints/{id}`, `/mtls/summary`, `/overview` and
//! `/notifications`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::fleet::BILLING_OWNER;
use crate::support::http::encode;
use crate::support::TestApp;

crate::on_both_backends!(
    endpoints_filter_by_tags_address_port_mtls_and_finding,
    endpoint_pages_are_stable_and_complete,
    socket_lists_filter_and_page_like_endpoint_lists,
    endpoint_detail_shows_what_it_served_over_time,
    mtls_summary_and_overview_count_the_fleet,
    notifications_list_failed_deliveries_and_by_owner,
    bad_endpoint_parameters_are_json_errors_naming_the_parameter,
);

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}

async fn endpoints_filter_by_tags_address_port_mtls_and_finding(app: TestApp) {
    let fleet = &app.fleet;
    let cases: Vec<(&str, Vec<i64>)> = vec![
        (
            "app=billing",
            vec![fleet.api_endpoint.0, fleet.expired_endpoint.0],
        ),
        (
            "env=staging",
            vec![fleet.shop_endpoint.0, fleet.weak_endpoint.0],
        ),
        (
            "owner=shop-team%40example.com",
            vec![fleet.shop_endpoint.0, fleet.weak_endpoint.0],
        ),
        ("address=10.1.0.12", vec![fleet.expired_endpoint.0]),
        ("address=10.1.0.20&port=9003", vec![fleet.bulk[2].0]),
        ("mtls=required", vec![fleet.api_endpoint.0]),
        ("mtls=optional", vec![fleet.shop_endpoint.0]),
        ("finding=expired", vec![fleet.expired_endpoint.0]),
        ("finding=weak_key", vec![fleet.weak_endpoint.0]),
        ("finding=legacy_protocol", vec![fleet.shop_endpoint.0]),
        ("finding=self_signed&app=shop", vec![fleet.weak_endpoint.0]),
        ("finding=sha1_signature", vec![]),
    ];
    for (query, expected) in cases {
        let page = app.json(&format!("/api/v1/endpoints?{query}")).await;
        let mut found = ids(&page);
        found.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(found, expected, "{query}: {page}");
    }
    let weak = app.json("/api/v1/endpoints?finding=weak_key").await;
    let leaf = &weak["items"][0]["observation"]["leaf_sha256"];
    assert_eq!(leaf, fleet.weak.info.sha256.as_str());
    let none = app.json("/api/v1/endpoints?mtls=none").await;
    let found: BTreeSet<i64> = ids(&none).into_iter().collect();
    assert!(found.contains(&fleet.expired_endpoint.0) && found.contains(&fleet.weak_endpoint.0));
    assert!(!found.contains(&fleet.api_endpoint.0), "{none}");
}

async fn endpoint_pages_are_stable_and_complete(app: TestApp) {
    for filter in ["app=bulk", "mtls=none", "finding=untrusted"] {
        let all = app.json(&format!("/api/v1/endpoints?{filter}")).await;
        let mut seen = Vec::new();
        let mut path = format!("/api/v1/endpoints?{filter}&limit=2");
        loop {
            let page = app.json(&path).await;
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/api/v1/endpoints?{filter}&limit=2&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(
            seen,
            ids(&all),
            "{filter}: pages in the same order as one big page"
        );
    }
    let bulk = app.json("/api/v1/endpoints?app=bulk").await;
    assert_eq!(
        ids(&bulk),
        app.fleet.bulk.iter().map(|id| id.0).collect::<Vec<_>>()
    );
    assert_eq!(bulk["items"][0]["last_status"], Value::Null, "never probed");
}

/// The seeded fleet has one endpoint per socket: the socket list finds the same ones, in
/// the same pages, each with no names under it.
async fn socket_lists_filter_and_page_like_endpoint_lists(app: TestApp) {
    for filter in ["app=billing", "mtls=none", "finding=untrusted", "app=bulk"] {
        let endpoints = app.json(&format!("/api/v1/endpoints?{filter}")).await;
        let sockets = app.json(&format!("/api/v1/sockets?{filter}")).await;
        assert_eq!(ids(&sockets), ids(&endpoints), "{filter}: {sockets}");
        for item in sockets["items"].as_array().expect("items") {
            assert_eq!(item["names"], serde_json::json!([]), "{item}");
            assert_eq!(item["names_total"], 0, "{item}");
        }
        let mut seen = Vec::new();
        let mut path = format!("/api/v1/sockets?{filter}&limit=1");
        loop {
            let page = app.json(&path).await;
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/sockets?{filter}&limit=1&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen, ids(&endpoints), "{filter}: pages of one");
    }
}

async fn endpoint_detail_shows_what_it_served_over_time(app: TestApp) {
    let fleet = &app.fleet;
    let detail = app
        .json(&format!("/api/v1/endpoints/{}", fleet.api_endpoint.0))
        .await;
    assert_eq!(detail["address"], "10.1.0.10");
    assert_eq!(detail["owner"], BILLING_OWNER);
    let history = detail["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{detail}");
    assert_eq!(history[0]["leaf_sha256"], fleet.api.info.sha256.as_str());
    assert_eq!(
        history[1]["leaf_sha256"],
        fleet.api_old.info.sha256.as_str()
    );
    assert_eq!(app.get("/api/v1/endpoints/999999").await.status, 404);
    assert_eq!(app.get("/api/v1/endpoints/abc").await.bad_field(), "id");
}

async fn mtls_summary_and_overview_count_the_fleet(app: TestApp) {
    let by_app = app.json("/api/v1/mtls/summary").await;
    assert_eq!(by_app["by"], "app");
    let billing = by_app["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["key"] == "billing")
        .cloned()
        .expect("billing group");
    assert_eq!(
        (billing["required"].as_u64(), billing["none"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        by_app["trend"].as_array().map(Vec::len),
        Some(1),
        "one snapshot: {by_app}"
    );
    let by_env = app.json("/api/v1/mtls/summary?by=env").await;
    assert!(by_env["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .any(|g| g["key"] == "staging"));
    let overview = app.json("/api/v1/overview").await;
    assert_eq!(overview["active_endpoints"], 9);
    assert_eq!(overview["observed_endpoints"], 4);
    assert_eq!(overview["hosts"], 3);
    assert_eq!(overview["certificates"], 6);
    assert_eq!(
        overview["mtls"],
        serde_json::json!({"required": 1, "optional": 1, "none": 2})
    );
    assert_eq!(overview["certificates_by_days_left"]["expired"], 1);
    assert_eq!(overview["certificates_by_days_left"]["within_30_days"], 1);
    assert_eq!(overview["endpoints_by_days_left"]["later"], 2);
    let finding = |name: &str| {
        overview["findings"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["name"] == name))
            .map(|f| f["count"].clone())
    };
    assert_eq!(finding("weak_key"), Some(1.into()));
    assert_eq!(finding("expired"), Some(1.into()));
    assert_eq!(finding("sha1_signature"), Some(0.into()));
    assert_eq!(
        overview["queue"]["due"], 5,
        "the five never-probed bulk endpoints"
    );
    assert_eq!(overview["failed_notifications"], 1);
}

async fn notifications_list_failed_deliveries_and_by_owner(app: TestApp) {
    let failed = app.json("/api/v1/notifications?failed=true").await;
    let items = failed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{failed}");
    assert_eq!(items[0]["sha256"], app.fleet.api.info.sha256.as_str());
    let owner = app
        .json(&format!(
            "/api/v1/notifications?owner={}&limit=1",
            encode(BILLING_OWNER)
        ))
        .await;
    let cursor = owner["next_cursor"]
        .as_str()
        .expect("two notifications, one per page");
    let rest = app
        .json(&format!(
            "/api/v1/notifications?owner={}&limit=1&cursor={cursor}",
            encode(BILLING_OWNER)
        ))
        .await;
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert_ne!(rest["items"][0]["id"], owner["items"][0]["id"]);
}

async fn bad_endpoint_parameters_are_json_errors_naming_the_parameter(app: TestApp) {
    let cases = [
        ("/api/v1/endpoints?address=10.1", "address"),
        ("/api/v1/endpoints?port=0", "port"),
        ("/api/v1/endpoints?port=70000", "port"),
        ("/api/v1/endpoints?mtls=maybe", "mtls"),
        ("/api/v1/endpoints?finding=ugly", "finding"),
        ("/api/v1/endpoints?cursor=-4", "cursor"),
        ("/api/v1/endpoints?limit=1001", "limit"),
        ("/api/v1/endpoints?hostname=x", "hostname"),
        ("/api/v1/sockets?port=0", "port"),
        ("/api/v1/sockets?mtls=maybe", "mtls"),
        ("/api/v1/sockets?limit=0", "limit"),
        ("/api/v1/sockets?sni=x", "sni"),
        ("/api/v1/mtls/summary?by=team", "by"),
        ("/api/v1/notifications?failed=perhaps", "failed"),
        ("/api/v1/notifications?cursor=x", "cursor"),
    ];
    for (path, field) in cases {
        let response = app.get(path).await;
        assert_eq!(response.bad_field(), field, "{path}: {}", response.text());
    }
}
