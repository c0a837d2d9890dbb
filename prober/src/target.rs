//! Probe targets: `host:port`, `[v6]:port`, `host:port@sni`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The host part of a target: an address to connect to as is, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

/// One endpoint to probe, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: Host,
    pub port: u16,
    /// The SNI name to send. `None` with an IP host means no SNI at all; with a name host,
    /// the name itself is sent (see [`Target::server_name`]).
    pub sni: Option<String>,
    /// The original spelling, echoed back in the probe result.
    pub raw: String,
    /// STARTTLS for this target alone (a static target's `starttls`); `None`: the
    /// prober's setting.
    pub starttls: Option<crate::StartTlsMode>,
}

/// Why a target string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target is longer than any real host:port@sni could be.
    #[error("target is longer than {max} characters")]
    TooLong { max: usize },
    /// No `:port` after the host.
    #[error("target {0:?} has no port (expected host:port, [v6]:port or host:port@sni)")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("target {target:?} has an invalid port {port:?}")]
    InvalidPort { target: String, port: String },
    /// `[` without `]`, or an address inside brackets that is not IPv6.
    #[error("target {0:?} has a malformed [IPv6] address")]
    BadBracket(String),
    /// The host or SNI name has characters no DNS name has.
    #[error("target {target:?} has an invalid name {name:?}")]
    InvalidName { target: String, name: String },
}

const MAX_TARGET_LEN: usize = 512;

impl Target {
    /// The name to send as SNI, if any.
    pub fn server_name(&self) -> Option<&str> {
        match (&self.sni, &self.host) {
            (Some(sni), _) => Some(sni),
            (None, Host::Name(name)) => Some(name),
            (None, Host::Ip(_)) => None,
        }
    }

    /// Overrides the SNI name (the `--sni` flag); an `@sni` in the target wins.
    pub fn with_default_sni(mut self, sni: Option<&str>) -> Self {
        if self.sni.is_none() {
            self.sni = sni.map(str::to_owned);
        }
        self
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let raw = input.trim();
        if raw.len() > MAX_TARGET_LEN {
            return Err(TargetError::TooLong {
                max: MAX_TARGET_LEN,
            });
        }
        let (host_port, sni) = match raw.rsplit_once('@') {
            Some((host_port, sni)) => (host_port, Some(sni)),
            None => (raw, None),
        };
        let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| TargetError::BadBracket(raw.to_owned()))?;
            let ip: std::net::Ipv6Addr = inside
                .parse()
                .map_err(|_| TargetError::BadBracket(raw.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| TargetError::MissingPort(raw.to_owned()))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = host_port
                .rsplit_once(':')
                .ok_or_else(|| TargetError::MissingPort(raw.to_owned()))?;
            if host.contains(':') {
                // A bare IPv6 address without brackets is ambiguous with its port.
                return Err(TargetError::BadBracket(raw.to_owned()));
            }
            let host = match host.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(valid_name(raw, host)?.to_ascii_lowercase()),
            };
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                return Err(TargetError::InvalidPort {
                    target: raw.to_owned(),
                    port: port.to_owned(),
                })
            }
        };
        let sni = match sni {
            Some(name) => Some(valid_name(raw, name)?.to_ascii_lowercase()),
            None => None,
        };
        Ok(Target {
            host,
            port,
            sni,
            raw: raw.to_owned(),
            starttls: None,
        })
    }
}

/// Accepts what DNS and SNI accept: letters, digits, `-`, `_`, `.`, at most 253 bytes.
fn valid_name<'a>(target: &str, name: &'a str) -> Result<&'a str, TargetError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(name)
    } else {
        Err(TargetError::InvalidName {
            target: target.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Target {
        s.parse().expect("valid target")
    }

    #[test]
    fn ipv4_target_sends_no_sni() {
        let t = parse("10.1.2.3:8443");
        assert_eq!(t.host, Host::Ip("10.1.2.3".parse().expect("ip")));
        assert_eq!(t.port, 8443);
        assert_eq!(t.server_name(), None);
    }

    #[test]
    fn bracketed_ipv6_with_sni() {
        let t = parse("[::1]:443@API.Internal");
        assert_eq!(t.host, Host::Ip("::1".parse().expect("ip")));
        assert_eq!(t.server_name(), Some("api.internal"));
    }

    #[test]
    fn hostname_target_uses_its_name_as_sni() {
        let t = parse("Example.COM:443");
        assert_eq!(t.server_name(), Some("example.com"));
        let t = parse("example.com:443@other.test");
        assert_eq!(t.server_name(), Some("other.test"));
    }

    #[test]
    fn malformed_targets_are_rejected_with_a_reason() {
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:70000",
            "[::1:443",
            "[nothost]:443",
            "::1:443",
            "a b:443",
            "host:443@",
            "host:443@bad name",
            "[::1]443",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}:443", "a".repeat(600));
        assert_eq!(
            long.parse::<Target>(),
            Err(TargetError::TooLong {
                max: MAX_TARGET_LEN
            })
        );
    }
}
