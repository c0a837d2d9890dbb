//! certfleet-prober: one TLS probe, start to finish.
//!
//! Connect (within the allowed networks), handshake with rustls while recording the chain as
//! sent and the client-certificate request, decide the mTLS policy, fall back to a raw
//! clear-text capture for TLS 1.0/1.1 servers, and analyse the chain. No database, no output
//! formatting: the result is a [`certfleet_model::ProbeResult`].

pub mod analysis;
pub mod danger;
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod http_check;
mod legacy;
mod policy;
mod probe;
mod resolve;
mod starttls;
mod target;

use std::net::SocketAddr;
use std::time::Duration;

pub use analysis::{TrustError, TrustStore};
pub use policy::NetworkPolicy;
pub use probe::Prober;
pub use resolve::{ResolveError, Resolver};
pub use starttls::{StartTls, StartTlsError};
pub use target::{Host, Target, TargetError};

/// How probes are run.
#[derive(Debug, Clone)]
pub struct ProberConfig {
    /// Deadline for the whole probe (connect, handshake, verdict, legacy retry).
    pub timeout: Duration,
    /// Deadline for the TCP connect alone (never more than `timeout`).
    pub connect_timeout: Duration,
    /// After a TLS 1.3 handshake in which the server asked for a client certificate, how
    /// long to wait for its verdict on our empty one (alert = required, ticket = optional).
    /// Silence until then counts as "went on" (optional); see docs/probing.md.
    pub verdict_wait: Duration,
    /// Where the prober may connect.
    pub policy: NetworkPolicy,
    /// Roots for the `untrusted` and `incomplete_chain` findings.
    pub trust: TrustStore,
    /// Retry with a raw TLS 1.0-1.2 ClientHello when rustls cannot handshake.
    pub legacy_fallback: bool,
    /// Put each certificate's PEM in the result (the service stores it).
    pub include_pem: bool,
    /// Name servers to use instead of the system configuration.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// Whether to speak a plaintext protocol before the handshake.
    pub starttls: StartTlsMode,
}

/// When to run a STARTTLS dialogue before the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartTlsMode {
    /// By the port: 25/587 SMTP, 143 IMAP, 110 POP3, 21 FTP, 389 LDAP, 5432 PostgreSQL,
    /// 5222 XMPP, 3306 MySQL; implicit TLS everywhere else.
    #[default]
    ByPort,
    /// Never: implicit TLS on every port.
    Never,
    /// Always this protocol.
    Always(StartTls),
}

impl std::str::FromStr for StartTlsMode {
    type Err = String;

    /// `auto` (by the port), `none`, or a protocol name (`smtp`, `postgres`, ...).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Ok(StartTlsMode::ByPort),
            "none" => Ok(StartTlsMode::Never),
            protocol => protocol.parse().map(StartTlsMode::Always),
        }
    }
}

impl std::fmt::Display for StartTlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartTlsMode::ByPort => f.write_str("auto"),
            StartTlsMode::Never => f.write_str("none"),
            StartTlsMode::Always(protocol) => f.write_str(protocol.as_str()),
        }
    }
}

impl StartTlsMode {
    /// The protocol to speak on `port`, if any.
    pub fn for_port(self, port: u16) -> Option<StartTls> {
        match self {
            StartTlsMode::ByPort => StartTls::for_port(port),
            StartTlsMode::Never => None,
            StartTlsMode::Always(protocol) => Some(protocol),
        }
    }
}

impl Default for ProberConfig {
    fn default() -> Self {
        ProberConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            verdict_wait: Duration::from_millis(1000),
            policy: NetworkPolicy::default(),
            trust: TrustStore::mozilla(),
            legacy_fallback: true,
            include_pem: false,
            nameservers: None,
            starttls: StartTlsMode::ByPort,
        }
    }
}
