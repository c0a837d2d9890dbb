//! Network zones: each endpoint's zone, leases by zone, probers announcing themselves.

use std::collections::BTreeMap;

use certfleet_store::{Error, ProberBeat, ZoneQueue, DEFAULT_ZONE};
use time::Duration;

use crate::fixtures::*;
use crate::harness::TestStore;

crate::on_both_backends!(
    the_zone_tag_wins_then_the_first_matching_cidr_then_default,
    a_prober_leases_only_the_endpoints_of_its_zones,
    a_hostile_zone_tag_is_refused_and_nothing_is_stored,
    probers_are_live_until_their_heartbeat_stops,
);

/// A host at `address` with one socket on port 443 and these tags.
fn host(
    machine_id: &str,
    address: &str,
    tags: &[(&str, &str)],
    t: &TestStore,
) -> certfleet_model::AgentReport {
    let mut report = report(machine_id, tags, vec![socket(address, 443)], t.clock.now());
    report.host.addresses = vec![ip(address)];
    report
}

async fn zones_by_address(t: &TestStore) -> BTreeMap<String, String> {
    all_endpoints(&*t.store)
        .await
        .into_iter()
        .map(|endpoint| (endpoint.address, endpoint.zone))
        .collect()
}

fn queue<'a>(zones: &'a [ZoneQueue], name: &str) -> &'a ZoneQueue {
    zones
        .iter()
        .find(|queue| queue.zone == name)
        .unwrap_or_else(|| panic!("zone {name} listed in {zones:?}"))
}

async fn the_zone_tag_wins_then_the_first_matching_cidr_then_default(t: TestStore) {
    for report in [
        host("a", "10.77.0.1", &[], &t),
        host("b", "10.78.0.1", &[("zone", "lab")], &t),
        host("c", "10.0.0.9", &[], &t),
    ] {
        t.store
            .ingest_report(&agent(), &report)
            .await
            .expect("ingests");
    }
    let zones = zones_by_address(&t).await;
    assert_eq!(zones["10.77.0.1"], "zone-a");
    assert_eq!(zones["10.78.0.1"], "lab", "the tag wins over zone-b's CIDR");
    assert_eq!(zones["10.0.0.9"], DEFAULT_ZONE);

    // The tag goes away: the CIDR places the endpoint again, at the next report.
    t.clock.advance(Duration::minutes(1));
    let untagged = host("b", "10.78.0.1", &[], &t);
    t.store
        .ingest_report(&agent(), &untagged)
        .await
        .expect("ingests");
    assert_eq!(zones_by_address(&t).await["10.78.0.1"], "zone-b");
}

async fn a_prober_leases_only_the_endpoints_of_its_zones(t: TestStore) {
    for report in [
        host("a", "10.77.0.1", &[], &t),
        host("b", "10.78.0.1", &[], &t),
        host("c", "10.78.0.2", &[], &t),
    ] {
        t.store
            .ingest_report(&agent(), &report)
            .await
            .expect("ingests");
    }
    let zone_a = vec!["zone-a".to_owned()];
    let leased = t
        .store
        .lease_due_in_zones("prober-a", &zone_a, 100, Duration::minutes(5))
        .await
        .expect("lease");
    let addresses: Vec<String> = leased.iter().map(|e| e.address.to_string()).collect();
    assert_eq!(addresses, ["10.77.0.1"]);

    // zone-b's endpoints stay due, and are seen as due with no prober to take them.
    let status = t.store.prober_status().await.expect("status");
    let b = queue(&status.zones, "zone-b");
    assert_eq!((b.endpoints, b.due, b.leased, b.live_probers), (2, 2, 0, 0));
    assert!(b.stranded());
    let a = queue(&status.zones, "zone-a");
    assert_eq!((a.due, a.leased), (0, 1));
    assert_eq!(
        queue(&status.zones, DEFAULT_ZONE).endpoints,
        0,
        "listed, empty"
    );

    let nothing = t
        .store
        .lease_due_in_zones("prober-a", &zone_a, 100, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(nothing.is_empty(), "{nothing:?}");
    // A prober of every zone takes what is left.
    let rest = t
        .store
        .lease_due_endpoints("prober-all", 100, Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(rest.len(), 2);
}

async fn a_hostile_zone_tag_is_refused_and_nothing_is_stored(t: TestStore) {
    let long = "z".repeat(64);
    for bad in ["a b", "zone\u{7f}", "x/../y", "<script>", long.as_str()] {
        let report = host("h", "10.77.0.1", &[("zone", bad)], &t);
        let error = t
            .store
            .ingest_report(&agent(), &report)
            .await
            .expect_err(bad);
        match error {
            Error::Invalid { field, .. } => assert_eq!(field, "host.tags.zone", "{bad}"),
            other => panic!("{bad}: {other}"),
        }
    }
    let mut report = host("h", "10.77.0.1", &[("zone", "lab")], &t);
    report.sockets[0]
        .tags
        .insert("zone".into(), "no spaces allowed".into());
    let error = t
        .store
        .ingest_report(&agent(), &report)
        .await
        .expect_err("socket tag");
    assert!(
        error.to_string().contains("sockets[0].tags.zone"),
        "{error}"
    );
    assert!(all_endpoints(&*t.store).await.is_empty());
}

async fn probers_are_live_until_their_heartbeat_stops(t: TestStore) {
    t.store
        .ingest_report(&agent(), &host("a", "10.77.0.1", &[], &t))
        .await
        .expect("ingests");
    let beat = ProberBeat {
        name: "p1/42".into(),
        zones: vec!["zone-a".into()],
        version: "0.1.0".into(),
        started_at: t.clock.now(),
        live_for: Duration::seconds(30),
        probes_per_second: 12.5,
    };
    t.store.announce_prober(&beat).await.expect("announces");
    let status = t.store.prober_status().await.expect("status");
    assert_eq!(status.probers.len(), 1);
    let prober = &status.probers[0];
    assert!(prober.live);
    assert_eq!(prober.zones, ["zone-a"]);
    assert_eq!(prober.probes_per_second, 12.5);
    assert_eq!(prober.last_seen, t.clock.now());
    assert_eq!(queue(&status.zones, "zone-a").live_probers, 1);
    assert_eq!(queue(&status.zones, "zone-b").live_probers, 0);
    assert!(!queue(&status.zones, "zone-a").stranded());

    // Silent past its beat: listed, not live, and its zone's due endpoints are stranded.
    t.clock.advance(Duration::seconds(31));
    let status = t.store.prober_status().await.expect("status");
    assert!(!status.probers[0].live);
    assert!(queue(&status.zones, "zone-a").stranded());
    let overview = t.store.fleet_overview().await.expect("overview");
    assert!(queue(&overview.zones, "zone-a").stranded());

    // A day later its row is dropped at the next beat of any prober.
    t.clock.advance(Duration::days(1));
    let other = ProberBeat {
        name: "p2/7".into(),
        zones: Vec::new(),
        ..beat
    };
    t.store.announce_prober(&other).await.expect("announces");
    let status = t.store.prober_status().await.expect("status");
    let names: Vec<&str> = status.probers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p2/7"]);
    assert_eq!(
        queue(&status.zones, "zone-b").live_probers,
        1,
        "serves every zone"
    );
}
