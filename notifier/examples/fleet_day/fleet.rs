//! The simulated fleet: which hosts report which sockets on which pass of which day, and
//! which certificate each endpoint serves that day. Everything is derived from numbers
//! (host, socket, day), so that the checks can say what must be stored without keeping
//! the fleet in memory.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use certfleet_model::{
    AgentInfo, AgentReport, CertificateInfo, Finding, HostInfo, KeyInfo, MtlsEnforcement,
    MtlsPolicy, ProbeResult, ProbeStatus, Protocol, SocketInfo, SocketScope, TlsParameters,
};
use time::{Duration, OffsetDateTime};

/// Sockets each host listens on.
pub const SOCKETS_PER_HOST: u32 = 30;

/// The shared issuing CA every leaf chains to (the second certificate of each chain).
const CA_SHA256: &str = "ca00000000000000000000000000000000000000000000000000000000000001";

/// The fleet's size, from `SCALE` (1.0: 100,000 hosts, 3,000,000 sockets, 700,000 new
/// certificates a day, 7,000 apps).
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub hosts: u32,
    pub certificates_per_day: u32,
    pub apps: u32,
}

impl Fleet {
    pub fn at_scale(scale: f64) -> Fleet {
        let of = |full: f64, least: f64| (full * scale).round().max(least) as u32;
        Fleet {
            hosts: of(100_000.0, 10.0),
            certificates_per_day: of(700_000.0, 10.0),
            apps: of(7_000.0, 3.0),
        }
    }

    pub fn sockets(&self) -> u64 {
        u64::from(self.hosts) * u64::from(SOCKETS_PER_HOST)
    }

    /// The app a host runs (its `app` tag); its owner is `team<app>@example.com`.
    pub fn app(&self, host: u32) -> u32 {
        host % self.apps
    }

    /// Host `host`'s report on `pass` (0: the day's first, 1: later that day) of `day`
    /// (1-based). On the second pass a tenth of its sockets moved to another port (a
    /// redeploy): each socket moves on one day in ten, the day fixed by its number.
    pub fn report(&self, host: u32, day: u32, pass: u32, at: OffsetDateTime) -> AgentReport {
        let address = host_address(host);
        let app = self.app(host);
        let sockets = (0..SOCKETS_PER_HOST)
            .map(|socket| SocketInfo {
                address,
                port: port(socket, day, pass),
                protocol: Protocol::Tcp,
                netns: None,
                process: Some("java".into()),
                container: None,
                reachable: vec![address],
                scope: SocketScope::Host,
                tags: BTreeMap::new(),
            })
            .collect();
        let tags = BTreeMap::from([
            ("app".to_string(), format!("app{app}")),
            ("env".to_string(), "prod".to_string()),
            ("owner".to_string(), format!("team{app}@example.com")),
        ]);
        AgentReport {
            agent: AgentInfo {
                version: "0.1.0".into(),
            },
            collected_at: at,
            host: HostInfo {
                hostname: format!("host-{host}"),
                machine_id: format!("{host:032x}"),
                addresses: vec![address],
                tags,
                namespace_addresses: Vec::new(),
            },
            sockets,
            probes: Vec::new(),
        }
    }

    /// Which of the day's certificates the endpoint at `address:port` serves: replicas of
    /// a service (the same socket number on hosts of the same app) share one, in as many
    /// groups as it takes to make the day's count.
    pub fn certificate_of(&self, address: IpAddr, port: u16) -> u32 {
        let host = host_of(address);
        let socket = u32::from(port).saturating_sub(10_000) / 50;
        let services = self.apps * SOCKETS_PER_HOST;
        let groups = self.certificates_per_day.div_ceil(services);
        let group = (host / self.apps) % groups;
        (group * services + self.app(host) * SOCKETS_PER_HOST + socket) % self.certificates_per_day
    }

    /// The synthetic probe result of an endpoint that serves certificate `certificate` of
    /// `day`: what the prober would have captured, without a TLS server.
    pub fn probe_result(
        &self,
        address: IpAddr,
        port: u16,
        day: u32,
        at: OffsetDateTime,
    ) -> ProbeResult {
        let certificate = self.certificate_of(address, port);
        let leaf = leaf(certificate, day, at);
        let expires_soon = leaf.not_after - at < Duration::days(30);
        let required = certificate.is_multiple_of(5);
        ProbeResult {
            target: format!("{address}:{port}"),
            address: Some(format!("{address}:{port}")),
            sni: None,
            status: ProbeStatus::Ok,
            error: None,
            probed_at: at,
            elapsed_ms: 3,
            starttls: None,
            tls: Some(TlsParameters {
                version: "TLSv1.3".into(),
                cipher: Some("TLS13_AES_128_GCM_SHA256".into()),
                alpn: None,
                group: Some("X25519".into()),
                legacy: false,
            }),
            mtls: Some(MtlsPolicy {
                requested: required,
                required: required.then_some(true),
                ca_names: Vec::new(),
                enforced: required.then_some(MtlsEnforcement::Tls),
            }),
            chain: vec![leaf, issuing_ca(at)],
            findings: if expires_soon {
                vec![Finding::ExpiresSoon]
            } else {
                Vec::new()
            },
        }
    }
}

/// 10.x.y.z, from the host number (up to 16 million hosts).
pub fn host_address(host: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (host & 0x00ff_ffff)))
}

fn host_of(address: IpAddr) -> u32 {
    match address {
        IpAddr::V4(v4) => u32::from(v4) & 0x00ff_ffff,
        IpAddr::V6(_) => 0,
    }
}

/// The port socket `socket` listens on: 10,000 + 50 per socket, plus how often it moved.
/// A socket moves on the second pass of the days `d` with `(socket + d).is_multiple_of(10)`.
pub fn port(socket: u32, day: u32, pass: u32) -> u16 {
    let moves_before = (1..day).filter(|d| (socket + d).is_multiple_of(10)).count() as u32;
    let moves_today = u32::from(pass > 0 && (socket + day).is_multiple_of(10));
    (10_000 + socket * 50 + (moves_before + moves_today) % 50) as u16
}

/// The name of certificate `certificate` (the same every day: a renewal keeps it).
pub fn hostname(certificate: u32) -> String {
    format!("svc{certificate}.fleet.example.com")
}

/// SHA-256 and serial of certificate `certificate` issued on `day`: new every day.
pub fn sha256(certificate: u32, day: u32) -> String {
    format!("{day:08x}{certificate:056x}")
}

pub fn serial(certificate: u32, day: u32) -> String {
    format!("{:x}", (u64::from(day) << 32) | u64::from(certificate))
}

/// Every leaf is a 90-day certificate; one in ten is near its end (1 to 29 days left: the
/// notifications), the rest has 31 to 89 days left.
fn leaf(certificate: u32, day: u32, at: OffsetDateTime) -> CertificateInfo {
    let days = if certificate.is_multiple_of(10) {
        1 + i64::from(certificate % 29)
    } else {
        31 + i64::from(certificate % 59)
    };
    let name = hostname(certificate);
    CertificateInfo {
        sha256: sha256(certificate, day),
        serial: serial(certificate, day),
        subject: format!("CN={name},O=Example"),
        issuer: "CN=Fleet Issuing CA,O=Example".into(),
        not_before: at + Duration::days(days - 90),
        not_after: at + Duration::days(days) + Duration::seconds(i64::from(certificate % 86_400)),
        sans: vec![name],
        key: KeyInfo {
            kind: "ecdsa".into(),
            bits: 256,
            curve: Some("P-256".into()),
        },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        self_signed: false,
        parse_error: None,
        pem: None,
    }
}

fn issuing_ca(at: OffsetDateTime) -> CertificateInfo {
    CertificateInfo {
        sha256: CA_SHA256.into(),
        serial: "ca01".into(),
        subject: "CN=Fleet Issuing CA,O=Example".into(),
        issuer: "CN=Fleet Root CA,O=Example".into(),
        not_before: at - Duration::days(365),
        not_after: at + Duration::days(3650),
        sans: Vec::new(),
        key: KeyInfo {
            kind: "ecdsa".into(),
            bits: 384,
            curve: Some("P-384".into()),
        },
        signature_algorithm: "ecdsa-with-SHA384".into(),
        is_ca: true,
        self_signed: false,
        parse_error: None,
        pem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_the_sockets_move_on_the_second_pass() {
        let moved = (0..SOCKETS_PER_HOST)
            .filter(|&socket| port(socket, 3, 0) != port(socket, 3, 1))
            .count();
        assert_eq!(moved, 3);
        // The next day starts where the last pass left off.
        for socket in 0..SOCKETS_PER_HOST {
            assert_eq!(port(socket, 3, 1), port(socket, 4, 0));
        }
    }
}
