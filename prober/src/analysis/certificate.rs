//! One certificate: its contract fields and what chain analysis needs.

use std::net::IpAddr;

use certfleet_model::text::escape_name;
use certfleet_model::{CertificateInfo, KeyInfo};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::names::rfc4514;
use super::signature::{self, SignatureCheck};

/// A certificate as served: always its DER and contract fields, plus the raw parts that
/// chain analysis compares. `parsed` is `None` when x509-parser rejected the DER.
#[derive(Debug, Clone)]
pub struct ServedCertificate {
    pub der: Vec<u8>,
    pub info: CertificateInfo,
    pub parsed: Option<Parts>,
}

/// The pieces of a parsed certificate that findings need.
#[derive(Debug, Clone)]
pub struct Parts {
    /// DER of the subject and issuer Names (with their SEQUENCE header).
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    /// DNS names of the SAN extension, or the CNs when there is no SAN at all.
    pub dns_names: Vec<String>,
    pub sha1_signed: bool,
}

impl ServedCertificate {
    /// Parses `der`. Never fails: an unparseable certificate keeps its hash and the reason.
    pub fn from_der(der: Vec<u8>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&der));
        match X509Certificate::from_der(&der) {
            Ok((_, cert)) => {
                let (info, parts) = describe(&cert, sha256);
                ServedCertificate {
                    der,
                    info,
                    parsed: Some(parts),
                }
            }
            Err(error) => {
                let info = unparsed(sha256, error.to_string());
                ServedCertificate {
                    der,
                    info,
                    parsed: None,
                }
            }
        }
    }
}

fn describe(cert: &X509Certificate<'_>, sha256: String) -> (CertificateInfo, Parts) {
    let mut sans = Vec::new();
    let mut dns_names = Vec::new();
    let mut has_san = false;
    if let Ok(Some(extension)) = cert.subject_alternative_name() {
        has_san = true;
        for name in &extension.value.general_names {
            match name {
                // SANs are kept with control characters escaped (certfleet_model::text):
                // a NUL or a newline in a name is data, never a record-breaking byte.
                GeneralName::DNSName(dns) => {
                    sans.push(escape_name(dns));
                    dns_names.push(dns.to_ascii_lowercase());
                }
                GeneralName::IPAddress(bytes) => sans.push(ip_text(bytes)),
                GeneralName::RFC822Name(mail) => sans.push(escape_name(mail)),
                GeneralName::URI(uri) => sans.push(escape_name(uri)),
                _ => {}
            }
        }
    }
    if !has_san {
        dns_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect();
    }
    let algorithm_oid = cert.signature_algorithm.algorithm.to_id_string();
    let subject = cert.subject().as_raw().to_vec();
    let issuer = cert.issuer().as_raw().to_vec();
    let self_signed = subject == issuer
        && match signature::check(cert, cert.public_key()) {
            SignatureCheck::Valid => true,
            SignatureCheck::Invalid => false,
            // ring cannot check it (DSA, P-521...): fall back to matching key identifiers.
            SignatureCheck::Unsupported => key_identifiers_agree(cert),
        };
    let info = CertificateInfo {
        sha256,
        serial: normalized_serial(cert.raw_serial()),
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sans,
        key: key_info(cert),
        signature_algorithm: signature_name(&algorithm_oid),
        is_ca: cert.is_ca(),
        self_signed,
        parse_error: None,
        pem: None,
    };
    let parts = Parts {
        subject,
        issuer,
        dns_names,
        sha1_signed: is_sha1(&algorithm_oid),
    };
    (info, parts)
}

fn unparsed(sha256: String, reason: String) -> CertificateInfo {
    CertificateInfo {
        sha256,
        serial: String::new(),
        subject: String::new(),
        issuer: String::new(),
        not_before: OffsetDateTime::UNIX_EPOCH,
        not_after: OffsetDateTime::UNIX_EPOCH,
        sans: Vec::new(),
        key: KeyInfo {
            kind: "unknown".into(),
            bits: 0,
            curve: None,
        },
        signature_algorithm: String::new(),
        is_ca: false,
        self_signed: false,
        parse_error: Some(reason),
        pem: None,
    }
}

/// Lowercase hex, no separators, no leading zeros; `0` for zero.
pub fn normalized_serial(raw: &[u8]) -> String {
    let hex = hex::encode(raw);
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        _ => format!("#{}", hex::encode(bytes)),
    }
}

fn key_info(cert: &X509Certificate<'_>) -> KeyInfo {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve_oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|params| params.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let (kind, bits, curve) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => ("rsa", rsa.key_size() as u32, None),
        Ok(PublicKey::EC(point)) => {
            let (name, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => ("P-256", 256),
                Some("1.3.132.0.34") => ("P-384", 384),
                Some("1.3.132.0.35") => ("P-521", 521),
                Some("1.3.132.0.10") => ("secp256k1", 256),
                _ => ("unknown", point.key_size() as u32),
            };
            ("ecdsa", bits, Some(name.to_owned()))
        }
        Ok(PublicKey::DSA(y)) => ("dsa", (y.len() * 8) as u32, None),
        _ => match algorithm.as_str() {
            "1.3.101.112" => ("ed25519", 256, None),
            "1.3.101.113" => ("ed448", 456, None),
            _ => ("unknown", 0, None),
        },
    };
    KeyInfo {
        kind: kind.to_owned(),
        bits,
        curve,
    }
}

/// OpenSSL's names for the signature algorithms seen in practice; the dotted OID otherwise.
fn signature_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "2.16.840.1.101.3.4.3.2" => "dsa-with-SHA256",
        other => return other.to_owned(),
    };
    name.to_owned()
}

fn is_sha1(oid: &str) -> bool {
    matches!(
        oid,
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3"
    )
}

/// For algorithms we cannot verify: self-issued and the authority key identifier (if any)
/// names the certificate's own key.
fn key_identifiers_agree(cert: &X509Certificate<'_>) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let mut subject_key = None;
    let mut authority_key = None;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key = aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => {}
        }
    }
    match (subject_key, authority_key) {
        (Some(subject), Some(authority)) => subject == authority,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_lose_leading_zeros_only() {
        assert_eq!(normalized_serial(&[0x00, 0x0a, 0xbc]), "abc");
        assert_eq!(normalized_serial(&[0x00]), "0");
        assert_eq!(normalized_serial(&[0x10, 0x00]), "1000");
    }

    #[test]
    fn garbage_der_is_kept_with_its_hash_and_reason() {
        let served = ServedCertificate::from_der(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        assert!(served.parsed.is_none());
        assert_eq!(served.info.sha256.len(), 64);
        assert!(served.info.parse_error.is_some());
    }
}
