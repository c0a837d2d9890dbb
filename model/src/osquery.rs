//! What certfleet keeps of an enrolled osquery node between its logger posts.
//!
//! osquery sends the results of each scheduled query on its own schedule, so the
//! `interface_addresses` of a host and its `listening_ports` usually arrive in different
//! posts. The store keeps, per node (its host key), the latest interface addresses, the
//! wildcard listeners of the host's network namespace (to expand them when addresses
//! arrive later), the host's namespace and its tags (from osquery's decorations). Every
//! part is bounded; an update is merged into the stored state in one transaction
//! ([`OsqueryHost::apply`]), so several API replicas may take posts of the same node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Most interface addresses kept per node (the bound of `host.addresses`).
pub const MAX_INTERFACE_ADDRESSES: usize = 256;

/// Most wildcard listeners kept per node.
pub const MAX_WILDCARD_LISTENERS: usize = 4096;

/// The state of one osquery node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsqueryHost {
    /// The host's usable interface addresses (no loopback, link-local, multicast or
    /// wildcard), in address order, at most [`MAX_INTERFACE_ADDRESSES`].
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// Wildcard listeners (`0.0.0.0`, `::`) of the host's namespace, in order, at most
    /// [`MAX_WILDCARD_LISTENERS`].
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// The host's network namespace: the lowest `net_namespace` seen (the host's is
    /// created first at boot and never freed); `None` while unknown.
    #[serde(default)]
    pub host_netns: Option<u64>,
    /// Tags from the latest decorations.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A listening socket as osquery's `listening_ports` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    pub address: IpAddr,
    pub port: u16,
    /// TCP (`true`) or UDP.
    pub tcp: bool,
    /// Inode of its network namespace, when known.
    pub netns: Option<u64>,
}

/// What one logger post changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsqueryUpdate {
    /// `interface_addresses` snapshot results: the addresses that replace the stored ones.
    pub addresses_snapshot: Option<Vec<IpAddr>>,
    /// `interface_addresses` added rows (batch and event results).
    pub addresses_added: Vec<IpAddr>,
    /// `interface_addresses` removed rows.
    pub addresses_removed: Vec<IpAddr>,
    /// Whether the post held a `listening_ports` snapshot: `listeners` then replace the
    /// stored ones; otherwise they are added.
    pub listeners_snapshot: bool,
    /// Every `listening_ports` row of the post (the wildcards of the host's namespace are
    /// kept).
    pub listeners: Vec<Listener>,
    /// The decorations of the post, when it had any.
    pub tags: Option<BTreeMap<String, String>>,
}

impl OsqueryUpdate {
    /// Whether the post changes nothing.
    pub fn is_empty(&self) -> bool {
        self.addresses_snapshot.is_none()
            && self.addresses_added.is_empty()
            && self.addresses_removed.is_empty()
            && !self.listeners_snapshot
            && self.listeners.is_empty()
            && self.tags.is_none()
    }
}

impl OsqueryHost {
    /// Merges one post into the state, keeping every bound.
    pub fn apply(&mut self, update: &OsqueryUpdate) {
        let mut addresses: BTreeSet<IpAddr> = match &update.addresses_snapshot {
            Some(snapshot) => snapshot.iter().copied().collect(),
            None => self.addresses.iter().copied().collect(),
        };
        addresses.extend(update.addresses_added.iter().copied());
        for removed in &update.addresses_removed {
            addresses.remove(removed);
        }
        self.addresses = addresses
            .into_iter()
            .filter(|address| usable(*address))
            .take(MAX_INTERFACE_ADDRESSES)
            .collect();

        let seen = update
            .listeners
            .iter()
            .filter_map(|listener| listener.netns);
        self.host_netns = seen.chain(self.host_netns).min();
        let mut listeners: BTreeSet<Listener> = if update.listeners_snapshot {
            BTreeSet::new()
        } else {
            self.listeners.iter().copied().collect()
        };
        listeners.extend(update.listeners.iter().copied());
        let host_netns = self.host_netns;
        self.listeners = listeners
            .into_iter()
            .filter(|listener| {
                listener.address.is_unspecified() && in_host_namespace(listener.netns, host_netns)
            })
            .take(MAX_WILDCARD_LISTENERS)
            .collect();

        if let Some(tags) = &update.tags {
            self.tags = tags.clone();
        }
    }
}

/// Whether a socket of namespace `netns` is in the host's namespace: an unknown namespace
/// is taken to be the host's.
pub fn in_host_namespace(netns: Option<u64>, host_netns: Option<u64>) -> bool {
    netns.is_none() || netns == host_netns
}

/// An address another machine could reach a listener at: not loopback, wildcard,
/// multicast, broadcast or link-local (nor an IPv4-mapped IPv6 address).
pub fn usable(address: IpAddr) -> bool {
    if address.is_loopback() || address.is_unspecified() || address.is_multicast() {
        return false;
    }
    match address {
        IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_broadcast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80 && v6.to_ipv4_mapped().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal")
    }

    fn listener(address: &str, port: u16, netns: Option<u64>) -> Listener {
        Listener {
            address: ip(address),
            port,
            tcp: true,
            netns,
        }
    }

    #[test]
    fn snapshots_replace_additions_add_and_bounds_hold() {
        let mut host = OsqueryHost::default();
        host.apply(&OsqueryUpdate {
            addresses_snapshot: Some(vec![ip("10.0.0.5"), ip("127.0.0.1"), ip("fe80::1")]),
            listeners: vec![
                listener("0.0.0.0", 443, Some(10)),
                listener("10.0.0.5", 8443, Some(10)),
                listener("0.0.0.0", 80, Some(20)),
            ],
            ..OsqueryUpdate::default()
        });
        assert_eq!(host.addresses, vec![ip("10.0.0.5")]);
        assert_eq!(host.host_netns, Some(10));
        assert_eq!(host.listeners, vec![listener("0.0.0.0", 443, Some(10))]);

        host.apply(&OsqueryUpdate {
            addresses_added: vec![ip("fd00::5")],
            addresses_removed: vec![ip("10.0.0.5")],
            listeners: vec![listener("::", 8443, Some(10))],
            ..OsqueryUpdate::default()
        });
        assert_eq!(host.addresses, vec![ip("fd00::5")]);
        assert_eq!(host.listeners.len(), 2, "added: {:?}", host.listeners);

        host.apply(&OsqueryUpdate {
            listeners_snapshot: true,
            listeners: vec![listener("::", 9443, Some(10))],
            tags: Some(BTreeMap::from([("app".into(), "billing".into())])),
            ..OsqueryUpdate::default()
        });
        assert_eq!(host.listeners, vec![listener("::", 9443, Some(10))]);
        assert_eq!(host.tags["app"], "billing");

        let many: Vec<IpAddr> = (0..1000u32)
            .map(|n| IpAddr::from([10, 1, (n >> 8) as u8, n as u8]))
            .collect();
        host.apply(&OsqueryUpdate {
            addresses_snapshot: Some(many),
            ..OsqueryUpdate::default()
        });
        assert_eq!(host.addresses.len(), MAX_INTERFACE_ADDRESSES);
        assert_eq!(host.tags["app"], "billing", "no decorations: tags kept");
    }
}
