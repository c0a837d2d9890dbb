//! `/proc/<pid>/net/tcp` and `tcp6`: the kernel's TCP socket table of one network
//! namespace, one line per socket.
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 ...
//! ```
//!
//! Addresses are the raw network-order words printed as native-endian integers (so
//! `0100007F` is 127.0.0.1 on a little-endian machine); the port is plain hex.
//!
//! The kernel prints the listening hash before the established one (`tcp_seq_start` in
//! `net/ipv4/tcp_ipv4.c`), so every listener comes before the first connection. The parser
//! uses that to stop at the first connection line: on a busy host the table holds hundreds
//! of thousands of connections, and the kernel only formats the part that is read. Kernels
//! before 4.4 printed pending connections (SYN_RECV) amid the listeners, so those lines do
//! not end the section.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `TCP_LISTEN` in `include/net/tcp_states.h`.
const STATE_LISTEN: u8 = 0x0A;
/// `TCP_SYN_RECV`: interleaved with listeners on old kernels.
const STATE_SYN_RECV: u8 = 0x03;
/// Longest line the parser looks at; real lines are about 150 bytes.
pub const MAX_LINE: usize = 512;

/// Which of the two tables a text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `tcp`: IPv4 sockets.
    V4,
    /// `tcp6`: IPv6 sockets (IPv4-mapped binds included).
    V6,
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Bound address; an IPv4-mapped IPv6 bind (`::ffff:10.0.0.5`) is given as IPv4.
    pub address: IpAddr,
    /// Listening port.
    pub port: u16,
    /// Socket inode, the key to `/proc/<pid>/fd` links (`socket:[inode]`); 0 for sockets
    /// the kernel itself holds.
    pub inode: u64,
}

/// What one line of the table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The column header.
    Header,
    /// A listening socket.
    Listener(Listener),
    /// A pending connection (SYN_RECV), which old kernels print amid the listeners.
    Pending,
    /// Any other socket: the listening section is over.
    Connection,
    /// Not a table line (truncated, garbage, too long).
    Malformed,
}

/// The listeners of one table, and how reading it went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpTable {
    /// Listening sockets in table order.
    pub listeners: Vec<Listener>,
    /// Lines that could not be parsed (skipped).
    pub malformed: usize,
    /// Whether the first connection line was reached (nothing after it was read).
    pub ended: bool,
    /// Whether listeners beyond the limit were left out.
    pub truncated: bool,
}

impl TcpTable {
    /// Parses a whole table text, keeping at most `limit` listeners.
    pub fn parse(text: &str, family: Family, limit: usize) -> TcpTable {
        let mut table = TcpTable::default();
        for line in text.lines() {
            if !table.push_line(line, family, limit) {
                break;
            }
        }
        table
    }

    /// Takes one line; `false` when nothing after it needs reading.
    pub fn push_line(&mut self, line: &str, family: Family, limit: usize) -> bool {
        match parse_line(line, family) {
            Line::Header | Line::Pending => true,
            Line::Malformed => {
                self.malformed += 1;
                true
            }
            Line::Connection => {
                self.ended = true;
                false
            }
            Line::Listener(listener) => {
                if self.listeners.len() >= limit {
                    self.truncated = true;
                    return false;
                }
                self.listeners.push(listener);
                true
            }
        }
    }
}

/// Classifies one line of a `tcp` or `tcp6` table.
pub fn parse_line(line: &str, family: Family) -> Line {
    if line.len() > MAX_LINE {
        return Line::Malformed;
    }
    let mut fields = line.split_ascii_whitespace();
    let Some(slot) = fields.next() else {
        return Line::Malformed;
    };
    if slot == "sl" {
        return Line::Header;
    }
    if !slot.ends_with(':') {
        return Line::Malformed;
    }
    let (Some(local), Some(_remote), Some(state)) = (fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let Some(state) = parse_hex_u8(state) else {
        return Line::Malformed;
    };
    let Some((address, port)) = parse_endpoint(local, family) else {
        return Line::Malformed;
    };
    // tx:rx queue, timer, retransmits, uid, timeout, then the inode.
    let Some(inode) = fields.nth(5).and_then(decimal) else {
        return Line::Malformed;
    };
    match state {
        STATE_LISTEN => Line::Listener(Listener {
            address,
            port,
            inode,
        }),
        STATE_SYN_RECV => Line::Pending,
        _ => Line::Connection,
    }
}

/// `0100007F:1F90` (or its 32-digit IPv6 form) as an address and port.
fn parse_endpoint(text: &str, family: Family) -> Option<(IpAddr, u16)> {
    let (address, port) = text.split_once(':')?;
    if port.len() != 4 {
        return None;
    }
    let port = u16::from_str_radix(hex_digits(port)?, 16).ok()?;
    let address = match family {
        Family::V4 if address.len() == 8 => IpAddr::V4(Ipv4Addr::from(native_word(address)?)),
        Family::V6 if address.len() == 32 => {
            let mut octets = [0u8; 16];
            for (index, chunk) in octets.chunks_exact_mut(4).enumerate() {
                let word = address.get(index * 8..index * 8 + 8)?;
                chunk.copy_from_slice(&native_word(word)?);
            }
            let address = Ipv6Addr::from(octets);
            match address.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(address),
            }
        }
        _ => return None,
    };
    Some((address, port))
}

/// Eight hex digits printed from a native-endian `u32`, as the bytes it held in memory.
fn native_word(text: &str) -> Option<[u8; 4]> {
    let word = u32::from_str_radix(hex_digits(text)?, 16).ok()?;
    Some(word.to_ne_bytes())
}

fn parse_hex_u8(text: &str) -> Option<u8> {
    if text.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex_digits(text)?, 16).ok()
}

/// `from_str_radix` also takes a leading `+`; the kernel never prints one.
fn hex_digits(text: &str) -> Option<&str> {
    text.bytes().all(|b| b.is_ascii_hexdigit()).then_some(text)
}

fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Formats a line the way the kernel does; the fixtures of this crate's tests use it.
pub fn format_line(slot: usize, address: IpAddr, port: u16, state: u8, inode: u64) -> String {
    let local = match address {
        IpAddr::V4(v4) => format!("{:08X}", u32::from_ne_bytes(v4.octets())),
        IpAddr::V6(v6) => v6
            .octets()
            .chunks_exact(4)
            .map(|chunk| {
                let word = [chunk[0], chunk[1], chunk[2], chunk[3]];
                format!("{:08X}", u32::from_ne_bytes(word))
            })
            .collect(),
    };
    let remote = "0".repeat(local.len());
    format!(
        "{slot:4}: {local}:{port:04X} {remote}:0000 {state:02X} 00000000:00000000 00:00000000 \
         00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                          retrnsmt   uid  timeout inode";

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn kernel_lines_round_trip_through_the_parser() {
        for (address, port) in [("127.0.0.1", 8080), ("0.0.0.0", 443), ("10.1.2.3", 1)] {
            let line = format_line(0, ip(address), port, STATE_LISTEN, 4242);
            let expected = Listener {
                address: ip(address),
                port,
                inode: 4242,
            };
            assert_eq!(parse_line(&line, Family::V4), Line::Listener(expected));
        }
        let line = format_line(3, ip("fd00::2"), 8443, STATE_LISTEN, 7);
        let Line::Listener(listener) = parse_line(&line, Family::V6) else {
            panic!("not a listener: {line}");
        };
        assert_eq!((listener.address, listener.port), (ip("fd00::2"), 8443));
    }

    #[test]
    fn ipv4_mapped_binds_are_reported_as_ipv4() {
        let line = format_line(0, ip("::ffff:10.0.0.5"), 443, STATE_LISTEN, 9);
        let Line::Listener(listener) = parse_line(&line, Family::V6) else {
            panic!("not a listener");
        };
        assert_eq!(listener.address, ip("10.0.0.5"));
    }

    #[test]
    fn a_real_little_endian_line_reads_as_loopback() {
        if cfg!(target_endian = "little") {
            let line = "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 \
                        00000000   101        0 3914 1 00000000ab431c6d 100 0 0 10 0";
            let expected = Listener {
                address: ip("127.0.0.1"),
                port: 0x1538,
                inode: 3914,
            };
            assert_eq!(parse_line(line, Family::V4), Line::Listener(expected));
        }
    }

    #[test]
    fn reading_stops_at_the_first_connection_but_not_at_pending_ones() {
        let text = [
            HEADER.to_owned(),
            format_line(0, ip("0.0.0.0"), 22, STATE_LISTEN, 1),
            format_line(1, ip("10.0.0.1"), 22, STATE_SYN_RECV, 0),
            format_line(2, ip("0.0.0.0"), 443, STATE_LISTEN, 2),
            format_line(3, ip("10.0.0.1"), 22, 0x01, 3),
            format_line(4, ip("0.0.0.0"), 8443, STATE_LISTEN, 4),
        ]
        .join("\n");
        let table = TcpTable::parse(&text, Family::V4, 100);
        let ports: Vec<u16> = table.listeners.iter().map(|l| l.port).collect();
        assert_eq!(ports, vec![22, 443]);
        assert!(table.ended && !table.truncated);
    }

    #[test]
    fn hostile_lines_are_counted_and_skipped() {
        let good = format_line(0, ip("0.0.0.0"), 443, STATE_LISTEN, 5);
        let hostile = [
            "",
            "garbage",
            "   0:",
            "   0: 0100007F:1F90",
            "   0: 0100007F:1F90 00000000:0000 0A",
            "   0: +100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   0: 0100007F:+F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 -1",
            "   0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 99999999999999999999999",
            "   0: 0100007F1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "   0: 0100007F:1F90 00000000:0000 ZZ 0:0 0:0 0 0 0 1",
            "   0: 0100007F:1F90 00000000:0000 0A0 0:0 0:0 0 0 0 1",
            "   0: 00000000000000000000000000000000:1F90 0:0 0A 0:0 0:0 0 0 0 1",
            "   0: 0100\u{e9}07F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            &good[..good.len() / 2],
            &"9".repeat(10_000),
        ];
        let mut text = hostile.join("\n");
        text.push('\n');
        text.push_str(&good);
        let table = TcpTable::parse(&text, Family::V4, 100);
        assert_eq!(table.malformed, hostile.len());
        assert_eq!(table.listeners.len(), 1);
        assert_eq!(table.listeners[0].port, 443);
    }

    #[test]
    fn a_huge_table_is_cut_at_the_limit() {
        let text: String = (0..50_000u64)
            .map(|n| format_line(n as usize, ip("0.0.0.0"), (n % 60_000 + 1) as u16, 0x0A, n))
            .collect::<Vec<_>>()
            .join("\n");
        let table = TcpTable::parse(&text, Family::V4, 1_000);
        assert_eq!(table.listeners.len(), 1_000);
        assert!(table.truncated);
    }

    #[test]
    fn a_family_mismatch_is_malformed_not_misread() {
        let line = format_line(0, ip("::"), 443, STATE_LISTEN, 1);
        assert_eq!(parse_line(&line, Family::V4), Line::Malformed);
        let line = format_line(0, ip("0.0.0.0"), 443, STATE_LISTEN, 1);
        assert_eq!(parse_line(&line, Family::V6), Line::Malformed);
    }
}
