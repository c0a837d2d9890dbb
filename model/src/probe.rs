//! The result of probing one endpoint: the probe JSON contract.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What became of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    /// A TLS server answered and its certificates were captured.
    Ok,
    /// Something answered, but it does not speak TLS (HTTP, SSH banner, garbage).
    NotTls,
    /// The port actively refused the connection.
    Refused,
    /// A deadline (connect, handshake or total) passed.
    Timeout,
    /// TLS was spoken, but the handshake failed; `error` says why.
    TlsError,
    /// No route, host down, name did not resolve.
    Unreachable,
    /// The address is outside the allowed networks; no connection was attempted.
    Denied,
    /// The plaintext protocol answered but declined STARTTLS (`error` quotes the reply).
    StarttlsRefused,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Ok => "ok",
            ProbeStatus::NotTls => "not_tls",
            ProbeStatus::Refused => "refused",
            ProbeStatus::Timeout => "timeout",
            ProbeStatus::TlsError => "tls_error",
            ProbeStatus::Unreachable => "unreachable",
            ProbeStatus::Denied => "denied",
            ProbeStatus::StarttlsRefused => "starttls_refused",
        }
    }
}

/// Negotiated TLS parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsParameters {
    /// `TLSv1.3`, `TLSv1.2`, `TLSv1.1`, `TLSv1.0`.
    pub version: String,
    /// IANA-style suite name as rustls spells it, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: Option<String>,
    /// Negotiated ALPN protocol (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
    /// Key exchange group (`X25519`, `secp256r1`), when known.
    #[serde(default)]
    pub group: Option<String>,
    /// True when the chain was read from a raw TLS 1.0-1.2 handshake that rustls
    /// could not complete (legacy protocol versions or cipher suites).
    pub legacy: bool,
}

/// The server's client-certificate (mutual TLS) policy as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtlsPolicy {
    /// The server sent a CertificateRequest.
    pub requested: bool,
    /// `true`: it refused to go on without a client certificate; `false`: it went on;
    /// `None`: no certificate was requested.
    pub required: Option<bool>,
    /// The acceptable CA names advertised in the CertificateRequest, RFC 4514 strings.
    /// May be empty even when a certificate was requested.
    pub ca_names: Vec<String>,
    /// Where a required client certificate is enforced: `tls` (the handshake refused to
    /// go on without one) or `http` (the handshake went on, but the HTTP server refused a
    /// request without one, as nginx's `ssl_verify_client on` does). `None` (left out of
    /// the JSON) when no certificate is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced: Option<MtlsEnforcement>,
}

impl MtlsPolicy {
    /// The client-certificate policy in a word: `required`, `optional` or `none`.
    pub fn label(&self) -> &'static str {
        match (self.requested, self.required) {
            (false, _) => "none",
            (true, Some(true)) => "required",
            (true, _) => "optional",
        }
    }
}

/// The layer at which a server insists on a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsEnforcement {
    /// The TLS handshake fails (or the server closes) without a client certificate.
    Tls,
    /// The handshake completes, and the HTTP server rejects requests without a certificate.
    Http,
}

impl MtlsEnforcement {
    /// The contract spelling: `tls` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsEnforcement::Tls => "tls",
            MtlsEnforcement::Http => "http",
        }
    }
}

impl std::str::FromStr for MtlsEnforcement {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tls" => Ok(MtlsEnforcement::Tls),
            "http" => Ok(MtlsEnforcement::Http),
            other => Err(format!("unknown mTLS enforcement {other:?}")),
        }
    }
}

/// Public key summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `rsa`, `ecdsa`, `ed25519`, `ed448`, `dsa`, or `unknown`.
    #[serde(rename = "type")]
    pub kind: String,
    pub bits: u32,
    /// Named curve for EC keys (`P-256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// One certificate of a served chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// SHA-256 of the DER, 64 lowercase hex digits.
    pub sha256: String,
    /// Serial number: lowercase hex, no separators, no leading zeros (`0` for zero).
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// DNS names, IP addresses, e-mail addresses and URIs of the SubjectAltName extension.
    pub sans: Vec<String>,
    pub key: KeyInfo,
    pub signature_algorithm: String,
    pub is_ca: bool,
    /// Issuer equals subject and the certificate's signature verifies with its own key.
    pub self_signed: bool,
    /// Set when x509-parser could not parse the DER; the other fields are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// The DER, base64 in PEM form; only when asked for (`--pem`), and always in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// A problem found with the served chain or protocol. Serialized as a snake_case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Expired,
    NotYetValid,
    /// The leaf expires in under 30 days.
    ExpiresSoon,
    SelfSigned,
    /// No path from the leaf to a configured trust anchor.
    Untrusted,
    /// The server did not send the intermediates needed to reach a trust anchor.
    IncompleteChain,
    /// The certificates were not sent leaf first, each followed by its issuer.
    WrongOrder,
    /// The SNI name sent is not covered by the leaf (RFC 6125 rules).
    HostnameMismatch,
    /// RSA under 2048 bits, EC under 256 bits.
    WeakKey,
    /// A certificate of the chain (other than a self-signed root) is signed with SHA-1.
    Sha1Signature,
    /// The best protocol version the server offers is below TLS 1.2.
    LegacyProtocol,
    /// An intermediate of the served chain expires before the leaf.
    ChainExpiresFirst,
}

impl Finding {
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Expired => "expired",
            Finding::NotYetValid => "not_yet_valid",
            Finding::ExpiresSoon => "expires_soon",
            Finding::SelfSigned => "self_signed",
            Finding::Untrusted => "untrusted",
            Finding::IncompleteChain => "incomplete_chain",
            Finding::WrongOrder => "wrong_order",
            Finding::HostnameMismatch => "hostname_mismatch",
            Finding::WeakKey => "weak_key",
            Finding::Sha1Signature => "sha1_signature",
            Finding::LegacyProtocol => "legacy_protocol",
            Finding::ChainExpiresFirst => "chain_expires_first",
        }
    }
}

/// Everything learned from probing one endpoint: one line of `certfleet probe --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The target as given (`host:port`, `[v6]:port`, `host:port@sni`).
    pub target: String,
    /// The socket address actually connected to, when one was chosen.
    #[serde(default)]
    pub address: Option<String>,
    /// The SNI name sent, if any (none for a bare IP target).
    pub sni: Option<String>,
    pub status: ProbeStatus,
    /// Human-readable reason for any status other than `ok`.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub probed_at: OffsetDateTime,
    pub elapsed_ms: u64,
    /// STARTTLS protocol used before the handshake (`smtp`, `imap`, ...), if any.
    pub starttls: Option<String>,
    pub tls: Option<TlsParameters>,
    pub mtls: Option<MtlsPolicy>,
    /// Certificates in the order the server sent them, the leaf first.
    pub chain: Vec<CertificateInfo>,
    /// A set, sorted for stable output.
    pub findings: Vec<Finding>,
}

impl ProbeResult {
    /// The leaf certificate, if any was captured.
    pub fn leaf(&self) -> Option<&CertificateInfo> {
        self.chain.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_serialize_as_contract_strings() {
        for finding in [
            Finding::Expired,
            Finding::NotYetValid,
            Finding::ExpiresSoon,
            Finding::SelfSigned,
            Finding::Untrusted,
            Finding::IncompleteChain,
            Finding::WrongOrder,
            Finding::HostnameMismatch,
            Finding::WeakKey,
            Finding::Sha1Signature,
            Finding::LegacyProtocol,
            Finding::ChainExpiresFirst,
        ] {
            let json = serde_json::to_string(&finding).expect("serializes");
            assert_eq!(json, format!("\"{}\"", finding.as_str()));
        }
    }

    #[test]
    fn status_serializes_as_contract_strings() {
        let json = serde_json::to_string(&ProbeStatus::NotTls).expect("serializes");
        assert_eq!(json, "\"not_tls\"");
        assert_eq!(ProbeStatus::TlsError.as_str(), "tls_error");
    }

    #[test]
    fn mtls_enforced_is_an_optional_extension_of_the_contract() {
        // Results written before the field existed still read.
        let old: MtlsPolicy =
            serde_json::from_str(r#"{"requested":true,"required":false,"ca_names":[]}"#)
                .expect("the old shape deserializes");
        assert_eq!(old.enforced, None);
        // Not required: the field is left out, so the JSON is what it always was.
        let json = serde_json::to_value(&old).expect("serializes");
        assert!(json.get("enforced").is_none(), "{json}");
        for enforced in [MtlsEnforcement::Tls, MtlsEnforcement::Http] {
            let policy = MtlsPolicy {
                requested: true,
                required: Some(true),
                ca_names: Vec::new(),
                enforced: Some(enforced),
            };
            let json = serde_json::to_value(&policy).expect("serializes");
            assert_eq!(json["enforced"], enforced.as_str());
            assert_eq!(enforced.as_str().parse(), Ok(enforced));
            let back: MtlsPolicy = serde_json::from_value(json).expect("deserializes");
            assert_eq!(back, policy);
        }
    }
}
