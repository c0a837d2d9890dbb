//! The addresses of a network namespace, read from outside it:
//!
//! - IPv4 from `/proc/<pid>/net/fib_trie`: every leaf with a `/32 host LOCAL` route is an
//!   address assigned in that namespace (the kernel adds that route to the local table for
//!   each address of an interface that is up). Linux has no other per-namespace IPv4
//!   address list in /proc, and reading it needs no privilege and no `setns`.
//! - IPv6 from `/proc/<pid>/net/if_inet6`: one line per address with its scope and flags.
//!
//! Only addresses another machine could connect to are kept: loopback, link-local,
//! multicast and unspecified addresses are dropped, and so are IPv6 addresses that are
//! still tentative or failed duplicate address detection.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `if_inet6` flags: `IFA_F_DADFAILED` and `IFA_F_TENTATIVE`.
const UNUSABLE_FLAGS: u8 = 0x08 | 0x40;
/// `if_inet6` scope of global addresses (unique-local `fd00::/8` included).
const SCOPE_GLOBAL: u8 = 0x00;

/// Reads `fib_trie` one line at a time, collecting local IPv4 addresses.
#[derive(Debug, Default)]
pub struct FibTrie {
    leaf: Option<Ipv4Addr>,
    addresses: BTreeSet<Ipv4Addr>,
    /// Lines that were neither tree nodes, leaves, routes nor table names.
    pub malformed: usize,
}

impl FibTrie {
    /// Parses a whole `fib_trie` text.
    pub fn parse(text: &str) -> Vec<Ipv4Addr> {
        let mut trie = FibTrie::default();
        text.lines().for_each(|line| trie.push_line(line));
        trie.finish()
    }

    /// Takes one line.
    pub fn push_line(&mut self, line: &str) {
        let line = line.trim();
        if let Some(leaf) = line.strip_prefix("|-- ") {
            self.leaf = leaf.trim().parse().ok();
            if self.leaf.is_none() {
                self.malformed += 1;
            }
        } else if line.starts_with('/') {
            let mut words = line.split_ascii_whitespace();
            let prefix = words.next();
            let kind = words.last();
            if let (Some(address), Some("/32"), Some("LOCAL")) = (self.leaf, prefix, kind) {
                self.addresses.insert(address);
            }
        } else if line.starts_with("+-- ") {
            self.leaf = None;
        } else if !(line.is_empty() || line.ends_with(':')) {
            self.malformed += 1;
        }
    }

    /// The usable local addresses seen, in order.
    pub fn finish(self) -> Vec<Ipv4Addr> {
        self.addresses
            .into_iter()
            .filter(|address| usable(IpAddr::V4(*address)))
            .collect()
    }
}

/// The usable addresses of an `if_inet6` text.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    let addresses: BTreeSet<Ipv6Addr> = text.lines().filter_map(if_inet6_line).collect();
    addresses.into_iter().collect()
}

/// One `if_inet6` line, `fd000000000000000000000000000002 04 40 00 82     eth0` (address,
/// interface index, prefix length, scope, flags, interface name): its address when usable.
pub fn if_inet6_line(line: &str) -> Option<Ipv6Addr> {
    let mut fields = line.split_ascii_whitespace();
    let hex = fields.next()?;
    let (_index, _prefix) = (fields.next()?, fields.next()?);
    let scope = hex_byte(fields.next()?)?;
    let flags = hex_byte(fields.next()?)?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let address = Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
    let keep = scope == SCOPE_GLOBAL && flags & UNUSABLE_FLAGS == 0 && usable(address.into());
    keep.then_some(address)
}

fn hex_byte(text: &str) -> Option<u8> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

/// An address another machine could reach a listener at.
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

    /// The shape of a real `fib_trie` (kernel 6.x, main and local tables merged).
    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
     |-- 169.254.1.1
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 198.18.0.2
        /30 link UNICAST
        /32 host LOCAL
     |-- 192.0.2.2
        /32 host LOCAL
";

    #[test]
    fn local_host_routes_are_the_addresses() {
        let expected: Vec<Ipv4Addr> = ["192.0.2.2", "198.18.0.2"]
            .iter()
            .map(|a| a.parse().expect("literal"))
            .collect();
        assert_eq!(FibTrie::parse(FIB_TRIE), expected);
    }

    #[test]
    fn garbage_and_truncation_do_not_invent_addresses() {
        let cut = &FIB_TRIE[..FIB_TRIE.find("/32 host LOCAL").expect("present") + 6];
        assert!(FibTrie::parse(cut).is_empty());
        let garbage = "|-- 999.1.1.1\n/32 host LOCAL\n|-- 10.0.0.1\n\u{0}\u{1}\n/32 host \
                       LOCAL\n+-- x\n/32 host LOCAL\n";
        assert_eq!(
            FibTrie::parse(garbage),
            vec!["10.0.0.1".parse::<Ipv4Addr>().expect("literal")]
        );
        let mut trie = FibTrie::default();
        for line in garbage.lines() {
            trie.push_line(line);
        }
        assert!(trie.malformed >= 2);
    }

    #[test]
    fn if_inet6_keeps_global_settled_addresses() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
20010db8000000000000000000000005 04 40 00 c0     eth0
20010db8000000000000000000000006 04 40 00 08     eth0
20010db8000000000000000000000007 04 40 00 20     eth0
not an address at all
20010db8 04 40 00 80 eth0
2001zzb8000000000000000000000007 04 40 00 80     eth0
";
        let expected: Vec<Ipv6Addr> = ["2001:db8::7", "fd00::2"]
            .iter()
            .map(|a| a.parse().expect("literal"))
            .collect();
        assert_eq!(parse_if_inet6(text), expected);
    }

    #[test]
    fn unusable_addresses_are_recognised() {
        for address in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "::1",
            "::",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!usable(address.parse().expect("literal")), "{address}");
        }
        for address in ["10.0.0.5", "198.18.0.2", "fd00::2", "2001:db8::1"] {
            assert!(usable(address.parse().expect("literal")), "{address}");
        }
    }
}
