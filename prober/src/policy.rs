//! Which addresses the prober may connect to.
//!
//! Link-local (cloud metadata services live there), the cloud metadata addresses outside
//! link-local, and multicast are always refused, whatever the allow list says: a report
//! must never be able to aim the prober at them. An IPv6 address that carries an IPv4
//! address (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`) is
//! judged as the IPv4 address it carries: that is where the connection ends up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Allow and deny lists of networks. An empty allow list allows every unicast address.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl NetworkPolicy {
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        NetworkPolicy { allow, deny }
    }

    /// `None` when the address may be probed, otherwise why not.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let ip = canonical(ip);
        if is_cloud_metadata(ip) {
            return Some(format!("{ip} is a cloud metadata address (never probed)"));
        }
        if is_link_local(ip) {
            return Some(format!("{ip} is link-local (never probed)"));
        }
        if ip.is_multicast() || ip.is_unspecified() || is_broadcast(ip) {
            return Some(format!("{ip} is not a unicast address (never probed)"));
        }
        if let Some(net) = self.deny.iter().find(|net| net.contains(&ip)) {
            return Some(format!("{ip} is inside denied network {net}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            return Some(format!("{ip} is outside the allowed networks"));
        }
        None
    }
}

/// Cloud metadata services (instance credentials live there): AWS (`169.254.169.254`,
/// `fd00:ec2::254`), Google Cloud's IPv6 (`fd00:c1::a9fe:a9fe`), Alibaba Cloud
/// (`100.100.100.200`). Listed on their own because the IPv6 ones and Alibaba's are inside
/// networks an allow list may well cover (`fc00::/7`, `100.64.0.0/10`).
const CLOUD_METADATA: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xc1, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

fn is_cloud_metadata(ip: IpAddr) -> bool {
    CLOUD_METADATA.contains(&ip)
}

/// An IPv6 address that carries an IPv4 address is judged as that IPv4 address:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, but not `::` nor `::1`)
/// and the NAT64 well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052), which a NAT64 gateway
/// translates to `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    let compatible = segments[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        ip
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("net")
    }

    #[test]
    fn metadata_and_multicast_are_refused_even_when_allowed() {
        let policy = NetworkPolicy::new(vec![net("0.0.0.0/0"), net("::/0")], vec![]);
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "ff02::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(policy.refusal(ip(bad)).is_some(), "{bad} must be refused");
        }
        assert!(policy.refusal(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn nat64_compatible_and_mapped_forms_are_judged_as_their_ipv4_address() {
        let everywhere = NetworkPolicy::new(vec![net("0.0.0.0/0"), net("::/0")], vec![]);
        for link_local in [
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::169.254.1.1",
            "::a9fe:a9fe",
            "::169.254.0.1",
            "::ffff:169.254.169.254",
        ] {
            let refusal = everywhere.refusal(ip(link_local));
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|r| r.contains("169.254.") && r.contains("never probed")),
                "{link_local} must be judged as its IPv4 address: {refusal:?}"
            );
        }
        for multicast in ["64:ff9b::e000:1", "::224.0.0.1"] {
            assert!(everywhere.refusal(ip(multicast)).is_some(), "{multicast}");
        }
        // The IPv4 networks decide, not the IPv6 ones: loopback stays loopback.
        let only_v6 = NetworkPolicy::new(vec![net("::/0")], vec![]);
        for loopback in ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1"] {
            let refusal = only_v6.refusal(ip(loopback));
            assert!(
                refusal.as_deref().is_some_and(|r| r.contains("127.0.0.1")),
                "{loopback} is 127.0.0.1, outside ::/0: {refusal:?}"
            );
        }
        let only_loopback = NetworkPolicy::new(vec![net("127.0.0.0/8")], vec![]);
        assert!(only_loopback.refusal(ip("::ffff:127.0.0.1")).is_none());
        assert!(only_loopback.refusal(ip("64:ff9b::7f00:1")).is_none());
        let denied = NetworkPolicy::new(vec![], vec![net("10.0.0.0/8")]);
        assert!(denied.refusal(ip("64:ff9b::a00:1")).is_some());
        assert!(denied.refusal(ip("::10.0.0.1")).is_some());
        // `::` and `::1` are themselves, and other IPv6 addresses are untouched.
        assert!(everywhere.refusal(ip("::1")).is_none());
        assert!(everywhere.refusal(ip("::")).is_some());
        assert!(everywhere.refusal(ip("2001:db8::a9fe:a9fe")).is_none());
        assert!(everywhere.refusal(ip("64:ff9b:0:0:1::a9fe:a9fe")).is_none());
    }

    #[test]
    fn cloud_metadata_addresses_are_refused_even_when_allowed() {
        let policy = NetworkPolicy::new(
            vec![
                net("0.0.0.0/0"),
                net("::/0"),
                net("fd00::/8"),
                net("100.64.0.0/10"),
            ],
            vec![],
        );
        for metadata in [
            "169.254.169.254",
            "fd00:ec2::254",
            "fd00:c1::a9fe:a9fe",
            "100.100.100.200",
            "::ffff:100.100.100.200",
            "64:ff9b::6464:64c8",
        ] {
            let refusal = policy.refusal(ip(metadata));
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|r| r.contains("cloud metadata")),
                "{metadata}: {refusal:?}"
            );
        }
        // Their neighbours are ordinary addresses.
        for neighbour in ["fd00:ec2::253", "fd00:c1::a9fe:a9ff", "100.100.100.201"] {
            assert!(policy.refusal(ip(neighbour)).is_none(), "{neighbour}");
        }
    }

    #[test]
    fn allow_list_restricts_and_deny_wins() {
        let policy = NetworkPolicy::new(vec![net("10.0.0.0/8")], vec![net("10.9.0.0/16")]);
        assert!(policy.refusal(ip("10.1.2.3")).is_none());
        assert!(policy.refusal(ip("10.9.2.3")).is_some());
        assert!(policy.refusal(ip("127.0.0.1")).is_some());
        let open = NetworkPolicy::default();
        assert!(open.refusal(ip("127.0.0.1")).is_none());
    }
}
