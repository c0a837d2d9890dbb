//! Which addresses the prober may connect to.
//!
//! Link-local (cloud metadata services live there) and multicast are always refused,
//! whatever the allow list says: a report must never be able to aim the prober at them.

use std::net::IpAddr;

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

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
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
    fn allow_list_restricts_and_deny_wins() {
        let policy = NetworkPolicy::new(vec![net("10.0.0.0/8")], vec![net("10.9.0.0/16")]);
        assert!(policy.refusal(ip("10.1.2.3")).is_none());
        assert!(policy.refusal(ip("10.9.2.3")).is_some());
        assert!(policy.refusal(ip("127.0.0.1")).is_some());
        let open = NetworkPolicy::default();
        assert!(open.refusal(ip("127.0.0.1")).is_none());
    }
}
