//! The sockets of a pass, kept compact: about 40 bytes per socket, names interned, the
//! reachable addresses stored once per namespace. The contract's [`SocketInfo`] values
//! are made one at a time while the report is written, so that 10,000 sockets cost well
//! under a megabyte instead of several.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use certfleet_model::{Protocol, ReportLimits, SocketInfo, SocketScope};
use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::collect::Visibility;
use crate::proc::addrs;

/// A network namespace as the report needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamespaceView {
    pub inode: Option<u64>,
    /// Its usable addresses; `None` when they could not be read.
    pub addresses: Option<Vec<IpAddr>>,
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub namespace: u32,
    pub address: IpAddr,
    pub port: u16,
    pub process: Option<u32>,
    pub container: Option<u32>,
}

/// The result of one pass: sockets, the host's addresses, and what could not be seen.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub(crate) namespaces: Vec<NamespaceView>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) names: Names,
    /// The tags of each container (by its interned id) that has any, stored once.
    pub(crate) container_tags: HashMap<u32, BTreeMap<String, String>>,
    /// The usable addresses of the host's network namespace.
    pub host_addresses: Vec<IpAddr>,
    /// How complete the pass was.
    pub visibility: Visibility,
}

impl Collection {
    /// The usable addresses of the other network namespaces (containers), without the
    /// host's own, sorted: the addresses the host's container sockets may be reached at.
    pub fn namespace_addresses(&self) -> Vec<IpAddr> {
        let mut addresses: Vec<IpAddr> = self
            .namespaces
            .iter()
            .filter_map(|ns| ns.addresses.as_ref())
            .flatten()
            .filter(|address| !self.host_addresses.contains(address))
            .copied()
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// Sockets in the pass.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no socket was found.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sockets in the contract's shape, made one at a time, ordered by namespace
    /// (the host's first), address and port.
    pub fn sockets(&self) -> impl Iterator<Item = SocketInfo> + '_ {
        self.entries.iter().map(|entry| {
            let namespace = self.namespaces.get(entry.namespace as usize);
            let addresses = namespace.and_then(|ns| ns.addresses.as_deref());
            let (scope, reachable) = place(entry.address, addresses);
            SocketInfo {
                address: entry.address,
                port: entry.port,
                protocol: Protocol::Tcp,
                netns: namespace.and_then(|ns| ns.inode),
                process: entry.process.map(|id| self.names.get(id).to_owned()),
                container: entry.container.map(|id| self.names.get(id).to_owned()),
                reachable,
                scope,
                tags: entry
                    .container
                    .and_then(|id| self.container_tags.get(&id))
                    .cloned()
                    .unwrap_or_default(),
            }
        })
    }

    /// A serde view of the sockets, for writing a report without materialising them.
    pub(crate) fn serialize_sockets(&self) -> SocketsView<'_> {
        SocketsView(self)
    }
}

/// Serialises [`Collection::sockets`] as a JSON array.
pub(crate) struct SocketsView<'a>(&'a Collection);

impl Serialize for SocketsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for socket in self.0.sockets() {
            seq.serialize_element(&socket)?;
        }
        seq.end()
    }
}

/// Interned strings (process names, container ids): each stored once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    strings: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    pub fn intern(&mut self, name: String) -> u32 {
        if let Some(&id) = self.index.get(&name) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(name.clone());
        self.index.insert(name, id);
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", String::as_str)
    }
}

/// Scope and reachable addresses of a listener bound to `address` in a namespace whose
/// usable addresses are `namespace` (`None`: unknown). A wildcard bind is reachable at
/// every address of its namespace (`::` at the IPv4 ones too: Linux sockets are
/// dual-stack unless they ask otherwise); when the namespace has none, only loopback.
pub fn place(address: IpAddr, namespace: Option<&[IpAddr]>) -> (SocketScope, Vec<IpAddr>) {
    let max = ReportLimits::default().max_addresses;
    if address.is_loopback() {
        return (SocketScope::Loopback, Vec::new());
    }
    if !address.is_unspecified() {
        return (SocketScope::Host, vec![address]);
    }
    let Some(namespace) = namespace else {
        return (SocketScope::Host, Vec::new());
    };
    let reachable: Vec<IpAddr> = namespace
        .iter()
        .copied()
        .filter(|a| addrs::usable(*a) && (address.is_ipv6() || a.is_ipv4()))
        .take(max)
        .collect();
    if reachable.is_empty() {
        return (SocketScope::Loopback, reachable);
    }
    (SocketScope::Host, reachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal")
    }

    #[test]
    fn wildcards_expand_to_their_namespace_and_loopback_stays_local() {
        let ns = [ip("198.18.0.2"), ip("fd00::2")];
        assert_eq!(
            place(ip("0.0.0.0"), Some(&ns)),
            (SocketScope::Host, vec![ip("198.18.0.2")])
        );
        assert_eq!(place(ip("::"), Some(&ns)), (SocketScope::Host, ns.to_vec()));
        assert_eq!(place(ip("127.0.0.1"), Some(&ns)).0, SocketScope::Loopback);
        assert_eq!(place(ip("::1"), Some(&ns)).0, SocketScope::Loopback);
        assert_eq!(
            place(ip("10.0.0.5"), None),
            (SocketScope::Host, vec![ip("10.0.0.5")])
        );
        assert_eq!(place(ip("0.0.0.0"), None), (SocketScope::Host, vec![]));
        assert_eq!(
            place(ip("0.0.0.0"), Some(&[])),
            (SocketScope::Loopback, vec![])
        );
        let v6_only = [ip("fd00::2")];
        assert_eq!(
            place(ip("0.0.0.0"), Some(&v6_only)).0,
            SocketScope::Loopback
        );
    }

    #[test]
    fn names_are_stored_once_and_sockets_are_made_on_demand() {
        let mut names = Names::default();
        let java = names.intern("java".into());
        assert_eq!(names.intern("java".into()), java);
        let entry = Entry {
            namespace: 0,
            address: ip("0.0.0.0"),
            port: 8443,
            process: Some(java),
            container: None,
        };
        let collection = Collection {
            namespaces: vec![NamespaceView {
                inode: Some(7),
                addresses: Some(vec![ip("10.0.0.5")]),
            }],
            entries: vec![entry; 3],
            names,
            ..Collection::default()
        };
        let sockets: Vec<SocketInfo> = collection.sockets().collect();
        assert_eq!(sockets.len(), 3);
        assert_eq!(sockets[0].process.as_deref(), Some("java"));
        assert_eq!(sockets[0].reachable, vec![ip("10.0.0.5")]);
        let json = serde_json::to_value(collection.serialize_sockets()).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(3));
        assert_eq!(json[2]["netns"], 7);
    }
}
