//! Looking certificates and endpoints up.

use certfleet_model::CertificateInfo;
use certfleet_store::{CertificateLookup, CertificateSearch, EndpointFilter, EndpointId};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    hostname_lookup_matches_sans_cns_and_wildcards,
    serial_lookup_accepts_common_spellings,
    expiring_leaves_lists_served_certificates_soonest_first,
    unknown_certificate_is_not_found,
    a_bad_stored_value_is_reported_not_zeroed,
    endpoints_filter_and_page,
);

/// The first page of a certificate lookup.
fn search(lookup: CertificateLookup, limit: u32) -> CertificateSearch {
    CertificateSearch {
        lookup,
        after: None,
        limit,
    }
}

/// Serves each chain on its own endpoint (port 1, 2, ...) and records the probes.
async fn serve(t: &TestStore, chains: Vec<Vec<CertificateInfo>>) -> Vec<EndpointId> {
    let sockets = (1..=chains.len() as u16)
        .map(|port| socket("10.0.0.5", port))
        .collect();
    let report = report("m1", &[("app", "web")], sockets, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let leased = t
        .store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease");
    let mut results = Vec::new();
    for lease in &leased {
        let chain = chains[usize::from(lease.port) - 1].clone();
        results.push((lease.id, probe_ok(chain, no_mtls(), t.clock.now())));
    }
    t.store
        .record_probe_results(&results)
        .await
        .expect("records");
    let mut by_port: Vec<_> = leased.iter().map(|lease| (lease.port, lease.id)).collect();
    by_port.sort();
    by_port.into_iter().map(|(_, id)| id).collect()
}

async fn hostname_lookup_matches_sans_cns_and_wildcards(t: TestStore) {
    let year = t.clock.now() + Duration::days(365);
    let wildcard = certificate(1, &["*.example.com"], "CN=*.example.com", year);
    let api = certificate(2, &["API.example.com"], "CN=api", year - Duration::days(1));
    let cn_only = certificate(3, &[], "CN=Other.Test,O=Example", year);
    serve(
        &t,
        vec![
            vec![wildcard.clone()],
            vec![api.clone()],
            vec![cn_only.clone()],
        ],
    )
    .await;

    let lookup = |name: &'static str| {
        let store = t.store.clone();
        async move {
            let found = store
                .search_certificates(&search(CertificateLookup::Hostname(name.into()), 50))
                .await
                .expect("lookup");
            found.into_iter().map(|c| c.sha256).collect::<Vec<_>>()
        }
    };
    assert_eq!(lookup("a.example.com").await, vec![wildcard.sha256.clone()]);
    assert_eq!(
        lookup("api.example.com").await,
        vec![wildcard.sha256.clone(), api.sha256.clone()]
    );
    assert_eq!(lookup("other.test").await, vec![cn_only.sha256.clone()]);
    assert_eq!(lookup("*.example.com").await, vec![wildcard.sha256.clone()]);
    assert!(
        lookup("example.com").await.is_empty(),
        "a wildcard does not cover its apex"
    );
    assert!(
        lookup("b.a.example.com").await.is_empty(),
        "a wildcard covers one label"
    );
}

async fn serial_lookup_accepts_common_spellings(t: TestStore) {
    let mut leaf = certificate(
        1,
        &["a.test"],
        "CN=a.test",
        t.clock.now() + Duration::days(30),
    );
    leaf.serial = "abc123".into();
    serve(&t, vec![vec![leaf.clone()]]).await;

    let by_serial = |serial: &str| {
        let search = search(CertificateLookup::Serial(serial.into()), 10);
        let store = t.store.clone();
        async move { store.search_certificates(&search).await }
    };
    for spelling in ["abc123", "00:AB:C1:23", "ab c1 23", "0x00ABC123", "0ABC123"] {
        let found = by_serial(spelling).await.expect("lookup");
        assert_eq!(found.len(), 1, "{spelling}");
        assert_eq!(found[0].sha256, leaf.sha256);
    }
    assert!(by_serial("abc124").await.expect("lookup").is_empty());
    assert!(by_serial("not hex").await.is_err());
}

async fn expiring_leaves_lists_served_certificates_soonest_first(t: TestStore) {
    let now = t.clock.now();
    let expired = certificate(1, &["e.test"], "CN=e.test", now - Duration::days(1));
    let soon = certificate(2, &["s.test"], "CN=s.test", now + Duration::days(3));
    let later = certificate(3, &["l.test"], "CN=l.test", now + Duration::days(20));
    let far = certificate(4, &["f.test"], "CN=f.test", now + Duration::days(60));
    let replaced = certificate(5, &["r.test"], "CN=r.test", now + Duration::days(2));
    let chains = vec![
        vec![later.clone()],
        vec![far],
        vec![soon.clone()],
        vec![expired.clone()],
    ];
    let ids = serve(&t, chains).await;
    // Port 5 served `replaced`, then moved on to `later`: `replaced` is no longer in use.
    let socket_five = report("m1", &[("app", "web")], vec![socket("10.0.0.5", 5)], now);
    t.store
        .ingest_report(&agent(), &socket_five)
        .await
        .expect("ingests");
    // Port 5 among the due endpoints: the names the first probes revealed are due too
    // (and the host's name on port 1 would be retired for serving port 1's certificate).
    let lease = t
        .store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease");
    let port_five = lease.iter().find(|e| e.port == 5 && e.sni.is_none());
    let port_five = port_five.expect("port 5 is due").id;
    assert!(!ids.contains(&port_five));
    let first = probe_ok(vec![replaced], no_mtls(), now);
    t.store
        .record_probe_results(&[(port_five, first)])
        .await
        .expect("records");
    let second = probe_ok(vec![later.clone()], no_mtls(), now + Duration::hours(1));
    t.store
        .record_probe_results(&[(port_five, second)])
        .await
        .expect("records");

    let expiring = t
        .store
        .expiring_leaves(Duration::days(30), None, 10)
        .await
        .expect("expiring");

    let order: Vec<_> = expiring
        .iter()
        .map(|e| e.certificate.sha256.clone())
        .collect();
    assert_eq!(order, vec![expired.sha256, soon.sha256, later.sha256]);
    assert_eq!(expiring[2].endpoints, 2, "served on ports 1 and 5");
}

async fn a_bad_stored_value_is_reported_not_zeroed(t: TestStore) {
    let ids = serve(
        &t,
        vec![vec![certificate(
            1,
            &["a.test"],
            "CN=a.test",
            t.clock.now(),
        )]],
    )
    .await;
    t.execute("UPDATE endpoints SET failures = -1").await;
    let error = t
        .store
        .endpoint(ids[0])
        .await
        .expect_err("a negative count");
    assert!(
        matches!(&error, certfleet_store::Error::BadRow { column, .. } if column == "failures"),
        "{error:?}"
    );
}

async fn unknown_certificate_is_not_found(t: TestStore) {
    let error = t
        .store
        .certificate(&"f".repeat(64))
        .await
        .expect_err("unknown");
    assert!(error.is_not_found(), "{error:?}");
}

async fn endpoints_filter_and_page(t: TestStore) {
    let now = t.clock.now();
    let web = report(
        "m1",
        &[("app", "web")],
        vec![socket("10.0.0.5", 443), socket("10.0.0.5", 8443)],
        now,
    );
    let db = report(
        "m2",
        &[("app", "db"), ("env", "prod")],
        vec![socket("10.0.0.6", 443)],
        now,
    );
    t.store.ingest_report(&agent(), &web).await.expect("web");
    t.store.ingest_report(&agent(), &db).await.expect("db");

    let by_app = EndpointFilter {
        app: Some("web".into()),
        ..EndpointFilter::default()
    };
    assert_eq!(t.store.endpoints(&by_app).await.expect("list").len(), 2);
    let by_port = EndpointFilter {
        port: Some(443),
        ..EndpointFilter::default()
    };
    assert_eq!(t.store.endpoints(&by_port).await.expect("list").len(), 2);
    let by_address = EndpointFilter {
        address: Some(ip("10.0.0.6")),
        ..EndpointFilter::default()
    };
    let found = t.store.endpoints(&by_address).await.expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tags.env.as_deref(), Some("prod"));

    let first_page = EndpointFilter {
        limit: 2,
        ..EndpointFilter::default()
    };
    let page = t.store.endpoints(&first_page).await.expect("page");
    let next = EndpointFilter {
        after: Some(page[1].id),
        ..first_page
    };
    let rest = t.store.endpoints(&next).await.expect("page");
    assert_eq!((page.len(), rest.len()), (2, 1));
    assert!(rest[0].id > page[1].id);
}
