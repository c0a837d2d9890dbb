//! The state kept of enrolled osquery nodes: merged post by post, per node, bounded.

use std::collections::BTreeMap;
use std::net::IpAddr;

use certfleet_model::osquery::MAX_INTERFACE_ADDRESSES;
use certfleet_model::{Listener, OsqueryUpdate};

use crate::harness::TestStore;

crate::on_both_backends!(osquery_state_is_merged_per_node_and_bounded);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("literal")
}

async fn osquery_state_is_merged_per_node_and_bounded(t: TestStore) {
    let wildcard = Listener {
        address: ip("0.0.0.0"),
        port: 9443,
        tcp: true,
        netns: Some(4_026_531_840),
    };
    // listening_ports first: the wildcard is kept for later.
    let listening = OsqueryUpdate {
        listeners_snapshot: true,
        listeners: vec![wildcard],
        ..OsqueryUpdate::default()
    };
    let state = t
        .store
        .update_osquery_host("hostname:web-1", &listening)
        .await
        .expect("stored");
    assert!(state.addresses.is_empty());
    assert_eq!(state.listeners, vec![wildcard]);

    // interface_addresses in a later post: both are there, with the decorations.
    let interfaces = OsqueryUpdate {
        addresses_snapshot: Some(vec![ip("10.0.0.5"), ip("127.0.0.1"), ip("fe80::1")]),
        tags: Some(BTreeMap::from([("app".into(), "billing".into())])),
        ..OsqueryUpdate::default()
    };
    let state = t
        .store
        .update_osquery_host("hostname:web-1", &interfaces)
        .await
        .expect("stored");
    assert_eq!(state.addresses, vec![ip("10.0.0.5")]);
    assert_eq!(state.listeners, vec![wildcard]);
    assert_eq!(state.host_netns, Some(4_026_531_840));
    assert_eq!(state.tags["app"], "billing");

    // Another node has its own state.
    let other = t
        .store
        .update_osquery_host("hostname:web-2", &OsqueryUpdate::default())
        .await
        .expect("stored");
    assert!(other.addresses.is_empty() && other.listeners.is_empty());

    // Bounded per node.
    let many: Vec<IpAddr> = (0..1000u32)
        .map(|n| IpAddr::from([10, 1, (n >> 8) as u8, n as u8]))
        .collect();
    let state = t
        .store
        .update_osquery_host(
            "hostname:web-1",
            &OsqueryUpdate {
                addresses_added: many,
                ..OsqueryUpdate::default()
            },
        )
        .await
        .expect("stored");
    assert_eq!(state.addresses.len(), MAX_INTERFACE_ADDRESSES);
    assert_eq!(state.listeners, vec![wildcard], "kept across posts");
    assert!(t
        .store
        .update_osquery_host(" ", &OsqueryUpdate::default())
        .await
        .is_err());
}
