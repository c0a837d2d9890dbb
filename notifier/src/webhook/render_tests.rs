use certfleet_model::KeyInfo;
use certfleet_store::{CertificateRecord, EndpointId, Seen};
use time::macros::datetime;
use time::Duration;

use super::*;
use crate::owners::OwnerRules;
use crate::plan::Served;
use crate::webhook::WebhookSpec;

fn now() -> OffsetDateTime {
    datetime!(2026-11-27 10:00 UTC)
}

fn certificate(name: &str, left: Duration) -> CertificateRecord {
    let not_after = now() + left;
    CertificateRecord {
        sha256: format!("{:064x}", name.len()),
        serial: "5e01".into(),
        subject: format!("CN={name},O=Example"),
        issuer: "CN=Example CA".into(),
        not_before: not_after - Duration::days(365),
        not_after,
        sans: vec![name.to_owned()],
        key: KeyInfo {
            kind: "ecdsa".into(),
            bits: 256,
            curve: None,
        },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        self_signed: false,
        seen: Seen {
            first_seen: now(),
            last_seen: now(),
        },
    }
}

fn served(certificate: &CertificateRecord, owner: &str, app: &str) -> Served {
    Served {
        not_before: certificate.not_before,
        not_after: certificate.not_after,
        position: 0,
        endpoints: vec![ServedAt {
            endpoint_id: EndpointId(7),
            address: "10.0.0.5:443".into(),
            sni: Some("api.example.com".into()),
            hostname: Some("web-1".into()),
            app: Some(app.into()),
            env: Some("prod".into()),
            owner: owner.into(),
            probed_at: Some(now()),
            probe_status: Some("ok".into()),
            seen_at: Some(now()),
        }],
        level: Some(Level::Days(7)),
    }
}

fn settings() -> Settings {
    let owners = OwnerRules::new(Vec::new(), "ops@example.com").expect("valid");
    Settings {
        base_url: "https://certfleet.test/".into(),
        ..Settings::new(owners)
    }
}

fn webhook(format: &str) -> Webhook {
    Webhook::new(
        0,
        WebhookSpec {
            name: Some("team".into()),
            url: "https://hooks.example.com/x".into(),
            format: format.into(),
            secret: "s3cret".into(),
            ..WebhookSpec::default()
        },
    )
    .expect("valid webhook")
}

#[test]
fn the_json_document_lists_each_certificate_with_its_endpoints_and_owner() {
    let expiring = certificate("api.example.com", Duration::days(5) + Duration::hours(2));
    let gone = certificate("old.example.com", Duration::days(20));
    let where_ = served(&expiring, "billing@example.com", "billing");
    let items = [
        Item {
            certificate: &expiring,
            reason: Reason::Expiring {
                served: &where_,
                level: Level::Days(7),
            },
        },
        Item {
            certificate: &gone,
            reason: Reason::Resolved,
        },
    ];
    let text = body(
        &webhook("json"),
        "[certfleet] subject",
        &items,
        &[12, 3],
        &settings(),
        now(),
    );
    let document: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(document["type"], "certfleet.digest");
    assert_eq!(document["version"], 1);
    assert_eq!(document["recipient"], "webhook:team");
    assert_eq!(document["delivery"], delivery_id(&[3, 12]));
    assert_eq!(document["generated_at"], "2026-11-27T10:00:00Z");
    assert_eq!(document["owners"], json!(["billing@example.com"]));
    let first = &document["items"][0];
    assert_eq!(first["names"], json!(["api.example.com"]));
    assert_eq!(first["days_left"], 5);
    assert_eq!(first["status"], "expiring");
    assert_eq!(first["severity"], "warning");
    assert_eq!(first["level"], "7d");
    assert_eq!(first["not_after"], "2026-12-02T12:00:00Z");
    assert_eq!(
        first["link"],
        format!("https://certfleet.test/certificates/{}", expiring.sha256)
    );
    let endpoint = &first["endpoints"][0];
    assert_eq!(endpoint["address"], "10.0.0.5:443");
    assert_eq!(endpoint["owner"], "billing@example.com");
    assert_eq!(endpoint["app"], "billing");
    assert_eq!(endpoint["reachable"], true);
    let second = &document["items"][1];
    assert_eq!(second["status"], "resolved");
    assert_eq!(second["endpoints"], json!([]));
}

#[test]
fn severity_follows_the_time_left() {
    let where_ = served(&certificate("a", Duration::days(1)), "o@example.com", "a");
    let expiring = |level| Reason::Expiring {
        served: &where_,
        level,
    };
    assert_eq!(
        severity(&expiring(Level::Expired), Duration::days(-1)),
        "critical"
    );
    assert_eq!(
        severity(&expiring(Level::Days(3)), Duration::days(2)),
        "critical"
    );
    assert_eq!(
        severity(&expiring(Level::Days(7)), Duration::days(6)),
        "warning"
    );
    assert_eq!(
        severity(&expiring(Level::Late), Duration::days(5)),
        "warning"
    );
    assert_eq!(
        severity(&expiring(Level::Days(30)), Duration::days(29)),
        "info"
    );
    assert_eq!(severity(&Reason::Resolved, Duration::days(1)), "info");
}

#[test]
fn a_slack_message_has_text_and_blocks_and_escapes_names() {
    let hostile = certificate("<!channel>&x", Duration::days(2));
    let where_ = served(&hostile, "ops@example.com", "web");
    let items = [Item {
        certificate: &hostile,
        reason: Reason::Expiring {
            served: &where_,
            level: Level::Days(3),
        },
    }];
    let text = body(
        &webhook("slack"),
        "[certfleet] x expires",
        &items,
        &[1],
        &settings(),
        now(),
    );
    let message: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(message["text"], "[certfleet] x expires");
    let blocks = message["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    let section = blocks[1]["text"]["text"].as_str().expect("section text");
    assert!(section.contains("&lt;!channel&gt;&amp;x"), "{section}");
    assert!(!section.contains("<!channel>"), "{section}");
    assert!(section.contains("expires in 2 days"), "{section}");
    assert!(section.contains("owner ops@example.com"), "{section}");
}

#[test]
fn a_long_slack_digest_stays_within_slacks_limits() {
    let certificates: Vec<CertificateRecord> = (0..60)
        .map(|n| certificate(&format!("svc{n}.example.com"), Duration::days(5)))
        .collect();
    let mut where_ = served(&certificates[0], "ops@example.com", "web");
    where_.endpoints = (0..400)
        .map(|n| ServedAt {
            address: format!("10.0.{}.{}:443", n / 250, n % 250),
            ..where_.endpoints[0].clone()
        })
        .collect();
    let items: Vec<Item<'_>> = certificates
        .iter()
        .map(|certificate| Item {
            certificate,
            reason: Reason::Expiring {
                served: &where_,
                level: Level::Days(7),
            },
        })
        .collect();
    let text = body(&webhook("slack"), "s", &items, &[1], &settings(), now());
    let message: Value = serde_json::from_str(&text).expect("JSON");
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "{}", blocks.len());
    for block in blocks {
        let text = block["text"]["text"].as_str().unwrap_or_default();
        assert!(text.chars().count() <= 3000, "{}", text.len());
    }
    let last = &blocks[blocks.len() - 1];
    assert_eq!(last["elements"][0]["text"], "and 15 more in certfleet");
}

#[test]
fn the_delivery_id_is_the_same_for_the_same_rows_in_any_order() {
    assert_eq!(delivery_id(&[5, 3, 9]), delivery_id(&[9, 5, 3]));
    assert!(delivery_id(&[5, 3, 9]).starts_with("3-"));
    assert_ne!(delivery_id(&[3, 5]), delivery_id(&[3, 5, 9]));
}
