//! `GET /api/v1/certificates` and `GET /api/v1/certificates/{sha256}`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::fleet::{API_SERIAL, BILLING_OWNER};
use crate::support::http::encode;
use crate::support::TestApp;

crate::on_both_backends!(
    hostname_lookup_matches_sans_and_wildcards_as_browsers_do,
    serial_lookup_accepts_every_spelling_people_paste,
    fingerprint_lookup_takes_sha256_and_sha1,
    issuer_lookup_pages_through_every_certificate_once,
    expiring_lists_leaves_in_use_soonest_first,
    certificate_detail_has_chain_places_owners_notifications_and_history,
    bad_certificate_parameters_are_json_errors_naming_the_parameter,
);

fn sha256s(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["sha256"].as_str().expect("sha256").to_owned())
        .collect()
}

async fn hostname_lookup_matches_sans_and_wildcards_as_browsers_do(app: TestApp) {
    let api = &app.fleet.api.info.sha256;
    let old = &app.fleet.api_old.info.sha256;
    let page = app
        .json("/api/v1/certificates?hostname=API.example.test.")
        .await;
    assert_eq!(
        sha256s(&page),
        vec![old.clone(), api.clone()],
        "newest expiry first: {page}"
    );
    assert_eq!(page["next_cursor"], Value::Null);
    let wildcard = app
        .json("/api/v1/certificates?hostname=v2.api.example.test")
        .await;
    assert_eq!(
        sha256s(&wildcard).len(),
        2,
        "*.api.example.test covers one label: {wildcard}"
    );
    let too_deep = app
        .json("/api/v1/certificates?hostname=a.b.api.example.test")
        .await;
    assert!(sha256s(&too_deep).is_empty(), "{too_deep}");
}

async fn serial_lookup_accepts_every_spelling_people_paste(app: TestApp) {
    let api = &app.fleet.api.info.sha256;
    let colons: Vec<String> = API_SERIAL.iter().map(|b| format!("{b:02X}")).collect();
    let decimal = API_SERIAL
        .iter()
        .fold(0u64, |n, b| n * 256 + u64::from(*b))
        .to_string();
    for spelling in [
        colons.join(":"),
        colons.join(" "),
        colons.join("").to_lowercase(),
        format!("0x{}", colons.join("")),
        app.fleet.api.info.serial.clone(),
        decimal,
    ] {
        let page = app
            .json(&format!(
                "/api/v1/certificates?serial={}",
                encode(&spelling)
            ))
            .await;
        assert_eq!(
            sha256s(&page),
            vec![api.clone()],
            "serial {spelling:?}: {page}"
        );
    }
}

async fn fingerprint_lookup_takes_sha256_and_sha1(app: TestApp) {
    let shop = &app.fleet.shop;
    let colons_upper: Vec<String> = shop
        .info
        .sha256
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect();
    for fingerprint in [
        shop.info.sha256.clone(),
        colons_upper.join(":"),
        shop.sha1.clone(),
    ] {
        let page = app
            .json(&format!(
                "/api/v1/certificates?fingerprint={}",
                encode(&fingerprint)
            ))
            .await;
        assert_eq!(
            sha256s(&page),
            vec![shop.info.sha256.clone()],
            "{fingerprint}"
        );
    }
}

async fn issuer_lookup_pages_through_every_certificate_once(app: TestApp) {
    // Spelt with a space after the comma and in another case than stored.
    let issuer = encode(&app.fleet.ca.info.subject.replace(',', ", ").to_lowercase());
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/certificates?issuer={issuer}&limit=2");
    loop {
        let page = app.json(&path).await;
        let items = sha256s(&page);
        assert!(items.len() <= 2, "{page}");
        seen.extend(items);
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/certificates?issuer={issuer}&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    let fleet = &app.fleet;
    // The CA is its own issuer.
    let expected: BTreeSet<String> = [
        &fleet.ca,
        &fleet.api,
        &fleet.api_old,
        &fleet.shop,
        &fleet.expired,
    ]
    .iter()
    .map(|issued| issued.info.sha256.clone())
    .collect();
    assert_eq!(seen.len(), expected.len(), "no certificate twice: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
}

async fn expiring_lists_leaves_in_use_soonest_first(app: TestApp) {
    let fleet = &app.fleet;
    let page = app.json("/api/v1/certificates?expiring_within=30d").await;
    assert_eq!(
        sha256s(&page),
        vec![
            fleet.expired.info.sha256.clone(),
            fleet.api.info.sha256.clone()
        ],
        "expired first, then the soonest; not the replaced one, not the CA: {page}"
    );
    assert_eq!(page["items"][0]["endpoints"], 1);
    let expired_only = app.json("/api/v1/certificates?expiring_within=0d").await;
    assert_eq!(
        sha256s(&expired_only),
        vec![fleet.expired.info.sha256.clone()]
    );
    let first = app
        .json("/api/v1/certificates?expiring_within=3650d&limit=1")
        .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more than one page")
        .to_owned();
    let second = app
        .json(&format!(
            "/api/v1/certificates?expiring_within=3650d&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(
        sha256s(&second),
        vec![fleet.api.info.sha256.clone()],
        "{second}"
    );
}

async fn certificate_detail_has_chain_places_owners_notifications_and_history(app: TestApp) {
    let fleet = &app.fleet;
    let api = &fleet.api.info;
    let detail = app
        .json(&format!("/api/v1/certificates/{}", api.sha256))
        .await;
    assert_eq!(detail["subject"], api.subject.as_str());
    assert_eq!(detail["serial"], api.serial.as_str());
    assert!(detail["pem"]
        .as_str()
        .unwrap_or_default()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        detail["chain"],
        serde_json::json!([api.sha256, fleet.ca.info.sha256])
    );
    let served = detail["served_at"].as_array().expect("served_at");
    assert_eq!(served.len(), 1, "{detail}");
    assert_eq!(served[0]["address"], "10.1.0.10");
    assert_eq!(served[0]["current"], true);
    assert_eq!(detail["owners"], serde_json::json!([BILLING_OWNER]));
    let notification = &detail["notifications"][0];
    assert_eq!(notification["threshold"], "14d");
    assert_eq!(notification["attempts"], 1);
    assert_eq!(notification["last_error"], "550 mailbox unavailable");
    assert_eq!(
        detail["history"]["replaces"][0]["sha256"],
        fleet.api_old.info.sha256.as_str()
    );
    let old = app
        .json(&format!(
            "/api/v1/certificates/{}",
            fleet.api_old.info.sha256
        ))
        .await;
    assert_eq!(
        old["history"]["replaced_by"][0]["sha256"],
        api.sha256.as_str(),
        "{old}"
    );
    assert_eq!(old["served_at"][0]["current"], false);
    // The SHA-1 fingerprint, and the SHA-256 in capitals with colons, name it too.
    let by_sha1 = app
        .json(&format!("/api/v1/certificates/{}", fleet.api.sha1))
        .await;
    assert_eq!(by_sha1["sha256"], api.sha256.as_str());
    let upper = api.sha256.to_uppercase();
    let by_upper = app.json(&format!("/api/v1/certificates/{upper}")).await;
    assert_eq!(by_upper["sha256"], api.sha256.as_str());
    let unknown = app
        .get(&format!("/api/v1/certificates/{}", "0".repeat(64)))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "not found");
}

async fn bad_certificate_parameters_are_json_errors_naming_the_parameter(app: TestApp) {
    let cases = [
        ("/api/v1/certificates", "hostname"),
        ("/api/v1/certificates?hostname=", "hostname"),
        ("/api/v1/certificates?hostname=a%20b", "hostname"),
        ("/api/v1/certificates?serial=xyz", "serial"),
        ("/api/v1/certificates?fingerprint=abc", "fingerprint"),
        (
            "/api/v1/certificates?expiring_within=soon",
            "expiring_within",
        ),
        (
            "/api/v1/certificates?expiring_within=99999d",
            "expiring_within",
        ),
        ("/api/v1/certificates?hostname=a.test&serial=01", "serial"),
        ("/api/v1/certificates?hostname=a.test&limit=0", "limit"),
        ("/api/v1/certificates?hostname=a.test&limit=lots", "limit"),
        ("/api/v1/certificates?hostname=a.test&cursor=zz", "cursor"),
        ("/api/v1/certificates?hostname=a.test&colour=red", "colour"),
        ("/api/v1/certificates/not-a-hash", "sha256"),
    ];
    for (path, field) in cases {
        let response = app.get(path).await;
        assert_eq!(response.bad_field(), field, "{path}: {}", response.text());
    }
}
