//! Agent reports into hosts and endpoints.

use certfleet_model::{Protocol, SocketScope};
use certfleet_store::{EndpointFilter, Error, IngestCounts};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    report_creates_one_endpoint_per_probeable_address,
    replayed_report_changes_nothing,
    invalid_report_leaves_nothing_and_names_the_field,
    report_failing_half_way_leaves_nothing,
    report_of_ten_thousand_sockets_is_ingested_whole,
    older_report_does_not_overwrite_a_newer_one,
    endpoints_not_reported_retire_and_come_back_when_reported,
);

async fn report_creates_one_endpoint_per_probeable_address(t: TestStore) {
    let mut loopback = socket("127.0.0.1", 5432);
    loopback.scope = SocketScope::Loopback;
    let mut udp = socket("10.0.0.5", 443);
    udp.protocol = Protocol::Udp;
    let mut wildcard = socket("0.0.0.0", 8443);
    wildcard.reachable = vec![ip("10.0.0.5"), ip("172.17.0.2")];
    let sockets = vec![socket("10.0.0.5", 443), loopback, udp, wildcard];
    let tags = [
        ("app", "billing"),
        ("env", "prod"),
        ("owner", "billing@example.com"),
    ];
    let report = report("m1", &tags, sockets, t.clock.now());

    let counts = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");

    assert_eq!(
        counts,
        IngestCounts {
            sockets: 4,
            endpoints: 3,
            skipped: 2,
            conflicts: 0,
            ..IngestCounts::default()
        }
    );
    let endpoints = all_endpoints(&*t.store).await;
    let mut addresses: Vec<_> = endpoints
        .iter()
        .map(|e| format!("{}:{}", e.address, e.port))
        .collect();
    addresses.sort();
    assert_eq!(
        addresses,
        ["10.0.0.5:443", "10.0.0.5:8443", "172.17.0.2:8443"]
    );
    let first = &endpoints[0];
    assert_eq!(first.tags.app.as_deref(), Some("billing"));
    assert_eq!(first.tags.env.as_deref(), Some("prod"));
    assert_eq!(first.tags.owner.as_deref(), Some("billing@example.com"));
    assert_eq!(first.hostname.as_deref(), Some("host-m1"));
    assert_eq!(
        first.next_probe_at,
        t.clock.now(),
        "a new endpoint is due at once"
    );
    assert!(first.observation.is_none());
}

async fn replayed_report_changes_nothing(t: TestStore) {
    let report = report(
        "m1",
        &[("app", "a")],
        vec![socket("10.0.0.5", 443)],
        t.clock.now(),
    );
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("first ingest");
    let inventory = t.store.inventory().await.expect("inventory");
    let endpoints = all_endpoints(&*t.store).await;

    t.clock.advance(Duration::minutes(5));
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("replay");

    assert_eq!(t.store.inventory().await.expect("inventory"), inventory);
    assert_eq!(all_endpoints(&*t.store).await, endpoints);
    assert_eq!(inventory.hosts, 1);
    assert_eq!(inventory.endpoints, 1);
}

async fn invalid_report_leaves_nothing_and_names_the_field(t: TestStore) {
    let sockets = vec![socket("10.0.0.5", 443), socket("10.0.0.5", 0)];
    let report = report("m1", &[], sockets, t.clock.now());

    let error = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect_err("refused");

    match error {
        Error::Invalid { field, .. } => assert_eq!(field, "sockets[1].port"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(t.store.inventory().await.expect("inventory").hosts, 0);
}

async fn report_failing_half_way_leaves_nothing(t: TestStore) {
    // Make the endpoint insert fail after the host row is written.
    if t.is_postgres() {
        t.execute(
            "CREATE FUNCTION refuse_port_666() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.port = 666 THEN RAISE EXCEPTION 'injected failure'; END IF; \
             RETURN NEW; END $$",
        )
        .await;
        t.execute(
            "CREATE TRIGGER refuse_port_666 BEFORE INSERT ON endpoints \
             FOR EACH ROW EXECUTE FUNCTION refuse_port_666()",
        )
        .await;
    } else {
        t.execute(
            "CREATE TRIGGER refuse_port_666 BEFORE INSERT ON endpoints \
             WHEN NEW.port = 666 BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .await;
    }
    let sockets = vec![socket("10.0.0.5", 443), socket("10.0.0.5", 666)];
    let report = report("m1", &[], sockets, t.clock.now());

    let error = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect_err("fails");

    assert!(!error.is_unavailable(), "{error:?}");
    let inventory = t.store.inventory().await.expect("inventory");
    assert_eq!((inventory.hosts, inventory.endpoints), (0, 0));
}

async fn report_of_ten_thousand_sockets_is_ingested_whole(t: TestStore) {
    let report = many_sockets("bulk", "10.1.0.1", 10_000, t.clock.now());

    let started = std::time::Instant::now();
    let counts = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect("ingests");
    let elapsed = started.elapsed();

    assert_eq!(counts.endpoints, 10_000);
    assert_eq!(
        t.store.inventory().await.expect("inventory").endpoints,
        10_000
    );
    eprintln!("10,000-socket report ingested in {elapsed:?}");
    let replayed = std::time::Instant::now();
    t.store
        .ingest_report(&agent(), &report)
        .await
        .expect("replay");
    eprintln!("and replayed in {:?}", replayed.elapsed());
}

async fn older_report_does_not_overwrite_a_newer_one(t: TestStore) {
    let now = t.clock.now();
    let newer = report("m1", &[("app", "new")], vec![socket("10.0.0.5", 443)], now);
    let older = report(
        "m1",
        &[("app", "old")],
        vec![socket("10.0.0.5", 443)],
        now - Duration::hours(1),
    );

    t.store
        .ingest_report(&agent(), &newer)
        .await
        .expect("newer");
    t.store
        .ingest_report(&agent(), &older)
        .await
        .expect("older");

    let endpoints = all_endpoints(&*t.store).await;
    assert_eq!(endpoints[0].tags.app.as_deref(), Some("new"));
    assert_eq!(endpoints[0].seen.last_seen, now);
}

async fn endpoints_not_reported_retire_and_come_back_when_reported(t: TestStore) {
    let start = t.clock.now();
    let old = report("m1", &[], vec![socket("10.0.0.5", 443)], start);
    t.store
        .ingest_report(&agent(), &old)
        .await
        .expect("old host");
    t.clock.advance(Duration::days(8));
    let fresh = report("m2", &[], vec![socket("10.0.0.6", 443)], t.clock.now());
    t.store
        .ingest_report(&agent(), &fresh)
        .await
        .expect("fresh host");

    let retired = t
        .store
        .retire_endpoints(Duration::days(7))
        .await
        .expect("retires");

    assert_eq!(retired, 1);
    let active = t
        .store
        .endpoints(&EndpointFilter::default())
        .await
        .expect("active");
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].address, "10.0.0.6");
    let leased = t
        .store
        .lease_due_endpoints("w", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1, "retired endpoints are not leased");
    assert_eq!(
        t.store
            .inventory()
            .await
            .expect("inventory")
            .active_endpoints,
        1
    );

    let back = report("m1", &[], vec![socket("10.0.0.5", 443)], t.clock.now());
    t.store
        .ingest_report(&agent(), &back)
        .await
        .expect("reported again");
    assert_eq!(
        t.store
            .inventory()
            .await
            .expect("inventory")
            .active_endpoints,
        2
    );
}
