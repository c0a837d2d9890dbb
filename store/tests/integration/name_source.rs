//! Where each named endpoint's name came from (issue 14, item 2): a leaf's DNS name
//! (`certificate`), a static target (`config`), the reporting host's name (`host_name`)
//! and the address's PTR name (`ptr`), the last two guessed. A guessed name that selects
//! the socket's default certificate is retired in the transaction recording its probe, and
//! stays retired until a probe interval has passed; one that selects another certificate
//! is kept.

use std::collections::BTreeMap;

use certfleet_store::{EndpointId, LeasedEndpoint, NameSource, StaticEndpoint};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    each_named_endpoint_knows_where_its_name_came_from,
    guessed_names_selecting_the_default_certificate_retire,
);

async fn lease_all(t: &TestStore) -> Vec<LeasedEndpoint> {
    t.store
        .lease_due_endpoints("w", 100, Duration::minutes(5))
        .await
        .expect("lease")
}

fn sources(leased: &[LeasedEndpoint]) -> BTreeMap<String, Option<NameSource>> {
    leased
        .iter()
        .filter_map(|e| Some((e.sni.clone()?, e.sni_source)))
        .collect()
}

async fn each_named_endpoint_knows_where_its_name_came_from(t: TestStore) {
    let sockets = vec![socket("10.0.5.1", 443), socket("10.0.5.2", 443)];
    let report = report("m5", &[], sockets, t.clock.now());
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingest");
    t.store
        .upsert_static_endpoints(&[StaticEndpoint {
            address: ip("10.0.5.3"),
            port: 443,
            sni: Some("static.example.com".into()),
            starttls: None,
            tags: Default::default(),
        }])
        .await
        .expect("static");
    let leased = lease_all(&t).await;
    assert_eq!(
        sources(&leased),
        [("static.example.com".to_owned(), Some(NameSource::Config))].into(),
        "a static target's name is configured, not guessed"
    );
    let first = leased.iter().find(|e| e.address == ip("10.0.5.1"));
    let second = leased.iter().find(|e| e.address == ip("10.0.5.2"));
    let (first, second) = (first.expect("leased"), second.expect("leased"));
    let in_days = t.clock.now() + Duration::days(90);
    let first_leaf = certificate(51, &["api.example.com"], "CN=api", in_days);
    // The host's name in the leaf: a certificate name, not a guess.
    let second_leaf = certificate(52, &["host-m5"], "CN=host-m5", in_days);
    let results = [
        (
            first.id,
            probe_ok(vec![first_leaf], no_mtls(), t.clock.now()),
        ),
        (
            second.id,
            probe_ok(vec![second_leaf], no_mtls(), t.clock.now()),
        ),
    ];
    let learnt = [(first.id, "ptr-1.example.net".to_owned())];
    t.store
        .record_probe_results_with_names(&results, &learnt)
        .await
        .expect("record");
    let named = lease_all(&t).await;
    let of = |address: &str| {
        let here: Vec<LeasedEndpoint> = named
            .iter()
            .filter(|e| e.address == ip(address))
            .cloned()
            .collect();
        sources(&here)
    };
    let expected_first = [
        ("api.example.com".to_owned(), Some(NameSource::Certificate)),
        ("host-m5".to_owned(), Some(NameSource::HostName)),
        ("ptr-1.example.net".to_owned(), Some(NameSource::Ptr)),
    ];
    assert_eq!(of("10.0.5.1"), expected_first.into());
    let expected_second = [("host-m5".to_owned(), Some(NameSource::Certificate))];
    assert_eq!(of("10.0.5.2"), expected_second.into());
}

async fn guessed_names_selecting_the_default_certificate_retire(t: TestStore) {
    let reported = |at| report("m6", &[], vec![socket("10.0.6.1", 443)], at);
    t.store
        .ingest_report(&agent(), &reported(t.clock.now()))
        .await
        .expect("ingest");
    let plain = lease_all(&t).await.pop().expect("the endpoint is due");
    let in_days = t.clock.now() + Duration::days(90);
    let default_leaf = certificate(61, &["default.example.com"], "CN=default", in_days);
    let other_leaf = certificate(62, &["ptr-6.example.net"], "CN=ptr", in_days);
    let learnt = [(plain.id, "ptr-6.example.net".to_owned())];
    let default_probe = || probe_ok(vec![default_leaf.clone()], no_mtls(), t.clock.now());
    t.store
        .record_probe_results_with_names(&[(plain.id, default_probe())], &learnt)
        .await
        .expect("record the socket");
    let named = lease_all(&t).await;
    let id_of = |name: &str| -> EndpointId {
        let found = named.iter().find(|e| e.sni.as_deref() == Some(name));
        found.expect("a named endpoint").id
    };
    let (host, ptr, certificate_name) = (
        id_of("host-m6"),
        id_of("ptr-6.example.net"),
        id_of("default.example.com"),
    );
    // The host's name and the certificate's name get the default leaf, the PTR name
    // another one.
    let named_probe = |name: &str, leaf: &certfleet_model::CertificateInfo| {
        let mut result = probe_ok(vec![leaf.clone()], no_mtls(), t.clock.now());
        result.sni = Some(name.to_owned());
        result
    };
    let results = [
        (host, named_probe("host-m6", &default_leaf)),
        (ptr, named_probe("ptr-6.example.net", &other_leaf)),
        (
            certificate_name,
            named_probe("default.example.com", &default_leaf),
        ),
    ];
    t.store
        .record_probe_results(&results)
        .await
        .expect("record the names");
    let live: BTreeMap<Option<String>, bool> = all_endpoints(&*t.store)
        .await
        .into_iter()
        .map(|e| (e.sni, e.retired_at.is_some()))
        .collect();
    let expected = [
        (None, false),
        (Some("default.example.com".to_owned()), false),
        (Some("host-m6".to_owned()), true),
        (Some("ptr-6.example.net".to_owned()), false),
    ];
    assert_eq!(
        live,
        expected.into(),
        "only the default-selecting guess retires"
    );

    // The socket probed again within the interval names the host again: the retired
    // guess stays retired and is not due.
    t.clock.advance(Duration::hours(1));
    t.store
        .ingest_report(&agent(), &reported(t.clock.now()))
        .await
        .expect("ingest again");
    t.store
        .record_probe_results_with_names(&[(plain.id, default_probe())], &learnt)
        .await
        .expect("record the socket again");
    let due = lease_all(&t).await;
    assert!(
        due.iter().all(|e| e.id != host),
        "a retired guess is not probed again within the interval: {due:?}"
    );
    // A probe interval later it is checked again: due at once, and retired again when it
    // still selects the default certificate.
    t.clock.advance(Duration::days(2));
    t.store
        .ingest_report(&agent(), &reported(t.clock.now()))
        .await
        .expect("ingest later");
    t.store
        .record_probe_results_with_names(&[(plain.id, default_probe())], &learnt)
        .await
        .expect("record the socket later");
    let due = lease_all(&t).await;
    let again = due.iter().find(|e| e.id == host);
    let again = again.expect("the guess is due again after an interval");
    assert_eq!(again.sni_source, Some(NameSource::HostName));
    t.store
        .record_probe_results(&[(host, named_probe("host-m6", &default_leaf))])
        .await
        .expect("record the guess again");
    let host_retired = all_endpoints(&*t.store)
        .await
        .into_iter()
        .any(|e| e.id == host && e.retired_at.is_some());
    assert!(host_retired, "retired again");
}
