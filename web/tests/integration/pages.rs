//! The HTML pages over HTTP: what they show, their links, and their JSON errors.

use crate::support::fleet::BILLING_OWNER;
use crate::support::http::encode;
use crate::support::TestApp;

crate::on_both_backends!(
    dashboard_shows_counts_worst_findings_and_mtls_shares,
    search_finds_by_hostname_serial_fingerprint_address_and_issuer,
    certificate_page_shows_fields_places_history_and_notifications,
    lists_and_detail_pages_answer_and_paginate,
    pages_refuse_bad_parameters,
);

async fn dashboard_shows_counts_worst_findings_and_mtls_shares(app: TestApp) {
    let html = app.page("/").await;
    for expected in [
        "id=\"sockets\">9<",
        "id=\"endpoints\">9 endpoints",
        "id=\"expired\">1<",
        "id=\"expiring-30\">2<",
        "href=\"/endpoints?finding=weak_key\"",
        "id=\"finding-weak_key\">1<",
        "href=\"/endpoints?finding=sha1_signature\"",
        "href=\"/endpoints?finding=legacy_protocol\"",
        "id=\"finding-legacy_protocol\">1<",
        "href=\"/endpoints?finding=untrusted\"",
        "href=\"/certificates?expiring_within=0d\"",
        "25% required",
        "href=\"/endpoints?app=billing\"",
        "1 failed notification(s)",
        "Share of sockets requiring mTLS",
    ] {
        assert!(
            html.contains(expected),
            "dashboard lacks {expected:?}:\n{html}"
        );
    }
}

async fn search_finds_by_hostname_serial_fingerprint_address_and_issuer(app: TestApp) {
    let fleet = &app.fleet;
    let by_name = app.page("/search?q=api.example.test").await;
    assert!(
        by_name.contains(&format!("/certificates/{}", fleet.api.info.sha256)),
        "{by_name}"
    );
    assert!(by_name.contains("certificate(s) by hostname"));
    for q in [
        "0A:1B:2C:3D:4E:5F:60",
        &fleet.api.sha1,
        &fleet.api.info.sha256,
    ] {
        let response = app.get(&format!("/search?q={}", encode(q))).await;
        assert_eq!(response.status, 303, "{q} opens the certificate");
        let location = format!("/certificates/{}", fleet.api.info.sha256);
        assert_eq!(response.header("location"), Some(location.as_str()));
    }
    let address = app.get("/search?q=10.1.0.11").await;
    assert_eq!(
        address.header("location"),
        Some("/endpoints?address=10.1.0.11")
    );
    let issuer = app
        .page(&format!("/search?q={}", encode(&fleet.ca.info.subject)))
        .await;
    assert!(issuer.contains("5 certificate(s) by issuer"), "{issuer}");
    let nothing = app.page("/search?q=nothing.example.test").await;
    assert!(nothing.contains("No certificates."));
}

async fn certificate_page_shows_fields_places_history_and_notifications(app: TestApp) {
    let fleet = &app.fleet;
    let html = app
        .page(&format!("/certificates/{}", fleet.api.info.sha256))
        .await;
    for expected in [
        fleet.api.info.subject.as_str(),
        "10 days left",
        "10.1.0.10",
        &format!("/endpoints/{}", fleet.api_endpoint.0),
        &format!("/owners/{}", encode(BILLING_OWNER)),
        &format!("/certificates/{}", fleet.api_old.info.sha256),
        "failed 1 time(s): 550 mailbox unavailable",
        "Download PEM",
    ] {
        assert!(
            html.contains(expected),
            "certificate page lacks {expected:?}:\n{html}"
        );
    }
    let pem = app
        .get(&format!("/certificates/{}.pem", fleet.api.info.sha256))
        .await;
    assert_eq!(pem.status, 200);
    assert_eq!(pem.header("content-type"), Some("application/x-pem-file"));
    assert_eq!(pem.text(), fleet.api.info.pem.clone().unwrap_or_default());
    let old = app
        .page(&format!("/certificates/{}", fleet.api_old.info.sha256))
        .await;
    assert!(
        old.contains("Replaced by")
            && old.contains(&format!("/certificates/{}", fleet.api.info.sha256))
    );
}

async fn lists_and_detail_pages_answer_and_paginate(app: TestApp) {
    let fleet = &app.fleet;
    let expiring = app.page("/certificates?expiring_within=30d").await;
    assert!(
        expiring.contains(&fleet.expired.info.subject)
            && expiring.contains(&fleet.api.info.subject)
    );
    let expired = app.page("/certificates?expiring_within=0d").await;
    assert!(expired.contains("Expired certificates still served"));
    let first = app.page("/endpoints?app=bulk&limit=2").await;
    let next = format!(
        "/endpoints?app=bulk&amp;limit=2&amp;cursor={}",
        fleet.bulk[1].0
    );
    assert!(first.contains(&next), "next page link: {first}");
    let last = app
        .page(&format!(
            "/endpoints?app=bulk&limit=2&cursor={}",
            fleet.bulk[3].0
        ))
        .await;
    assert!(last.contains("10.1.0.20:9005") && !last.contains("Next page"));
    let weak = app.page("/endpoints?finding=weak_key").await;
    assert!(weak.contains("10.1.0.13:443") && !weak.contains("10.1.0.10:443"));
    let endpoint = app
        .page(&format!("/endpoints/{}", fleet.api_endpoint.0))
        .await;
    assert!(endpoint.contains("Served over time") && endpoint.contains(&fleet.api_old.info.sha256));
    let owner = app
        .page(&format!("/owners/{}", encode(BILLING_OWNER)))
        .await;
    assert!(
        owner.contains("10.1.0.10:443") && owner.contains("10.1.0.12:8443"),
        "{owner}"
    );
    assert!(owner.contains("14d") && owner.contains("sent"));
    let failed = app.page("/notifications/failed").await;
    assert!(failed.contains("550 mailbox unavailable"));
    let env = app.page("/mtls?by=env").await;
    assert!(env.contains("staging") && env.contains("prod"));
}

async fn pages_refuse_bad_parameters(app: TestApp) {
    for (path, field) in [
        ("/certificates?expiring_within=later", "expiring_within"),
        ("/certificates/xyz", "sha256"),
        ("/endpoints?mtls=sometimes", "mtls"),
        ("/endpoints/0", "id"),
        ("/mtls?by=team", "by"),
        ("/notifications/failed?cursor=x", "cursor"),
        ("/search?query=x", "query"),
    ] {
        assert_eq!(app.get(path).await.bad_field(), field, "{path}");
    }
    assert_eq!(
        app.get(&format!("/certificates/{}", "ab".repeat(32)))
            .await
            .status,
        404
    );
}
