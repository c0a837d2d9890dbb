//! Test certificates, generated at test time: rcgen for what it can make, the `openssl`
//! command line for the rest (RSA keys, an RSA-1024 leaf, SHA-1 signatures).
//!
//! Every certificate carries the facts the probe must report for it (`Cert`), taken from
//! what we asked for or, for openssl-made ones, from `openssl x509` itself.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

/// The key algorithm of a certificate made with rcgen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    P256,
    P384,
    Ed25519,
    Rsa2048,
}

/// The key facts a probe must report: `{"type", "bits", "curve"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub kind: &'static str,
    pub bits: u64,
    pub curve: Option<&'static str>,
}

impl Key {
    fn facts(self) -> KeyFacts {
        let (kind, bits, curve) = match self {
            Key::P256 => ("ecdsa", 256, Some("P-256")),
            Key::P384 => ("ecdsa", 384, Some("P-384")),
            Key::Ed25519 => ("ed25519", 256, None),
            Key::Rsa2048 => ("rsa", 2048, None),
        };
        KeyFacts { kind, bits, curve }
    }

    /// The signature algorithm of certificates this key signs, as x509-parser names it.
    fn signs_with(self) -> &'static str {
        match self {
            Key::P256 => "ecdsa-with-SHA256",
            Key::P384 => "ecdsa-with-SHA384",
            Key::Ed25519 => "ED25519",
            Key::Rsa2048 => "sha256WithRSAEncryption",
        }
    }
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct Spec {
    pub common_name: String,
    pub sans: Vec<String>,
    pub key: Key,
    pub is_ca: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Spec {
    /// A server certificate valid from a day ago for a year, ECDSA P-256.
    pub fn leaf(common_name: &str, sans: &[&str]) -> Spec {
        Spec {
            common_name: common_name.to_owned(),
            sans: sans.iter().map(|san| (*san).to_owned()).collect(),
            key: Key::P256,
            is_ca: false,
            not_before: now() - Duration::days(1),
            not_after: now() + Duration::days(365),
        }
    }

    /// A CA certificate valid from a day ago for ten years, ECDSA P-256.
    pub fn ca(common_name: &str) -> Spec {
        Spec {
            is_ca: true,
            not_after: now() + Duration::days(3650),
            ..Spec::leaf(common_name, &[])
        }
    }

    pub fn key(mut self, key: Key) -> Spec {
        self.key = key;
        self
    }

    /// Valid from `now + from` to `now + until` (negative durations lie in the past).
    pub fn valid(mut self, from: Duration, until: Duration) -> Spec {
        self.not_before = now() + from;
        self.not_after = now() + until;
        self
    }
}

/// A generated certificate, its key, where both are written, and the facts to expect.
pub struct Cert {
    pub der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// Lowercase hex, no leading zeros.
    pub serial: String,
    /// RFC 4514.
    pub subject: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sans: Vec<String>,
    pub key: KeyFacts,
    pub signature_algorithm: &'static str,
    pub is_ca: bool,
    pub self_signed: bool,
    /// Present for rcgen-made certificates, which can then issue others.
    pub(crate) signer: Option<(rcgen::Certificate, KeyPair, Key)>,
}

impl Cert {
    /// The path of the certificate's PEM file, for `--ca-file`.
    pub fn pem_file(&self) -> &str {
        self.cert_path.to_str().expect("temporary paths are UTF-8")
    }
}

/// A root, an intermediate it signed, and a leaf the intermediate signed.
pub struct Chain {
    pub root: Cert,
    pub intermediate: Cert,
    pub leaf: Cert,
}

/// A folder of generated certificates that lives as long as the test.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: TempDir::new().expect("temporary folder for certificates"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the folder and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).expect("write into the certificate folder");
        path
    }

    /// Writes the PEM of several certificates, in this order, into one file.
    pub fn bundle(&self, name: &str, certs: &[&Cert]) -> PathBuf {
        let pems: Vec<String> = certs
            .iter()
            .map(|cert| fs::read_to_string(&cert.cert_path).expect("certificate file is readable"))
            .collect();
        self.write(name, &pems.concat())
    }

    /// Issues a certificate with rcgen, signed by `issuer`, or self-signed when `None`.
    pub fn issue(&self, name: &str, spec: Spec, issuer: Option<&Cert>) -> Cert {
        let key = self.key_pair(name, spec.key);
        let serial = next_serial();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&spec.common_name);
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.subject_alt_names = spec.sans.iter().map(|san| san_type(san)).collect();
        if spec.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        params.use_authority_key_identifier_extension = issuer.is_some();

        let (cert, issuer_name, signed_with) = match issuer {
            Some(issuer) => {
                let (issuer_cert, issuer_key, issuer_alg) = issuer
                    .signer
                    .as_ref()
                    .expect("the issuer was made with rcgen");
                let cert = params
                    .signed_by(&key, issuer_cert, issuer_key)
                    .expect("rcgen signs the certificate");
                (cert, issuer.subject.clone(), *issuer_alg)
            }
            None => {
                let cert = params.self_signed(&key).expect("rcgen self-signs");
                (cert, rfc4514(&spec.common_name), spec.key)
            }
        };
        let der = cert.der().to_vec();
        let stem = format!("{name}-{}", serial_hex(&serial));
        let cert_path = self.write(&format!("{stem}.pem"), &cert.pem());
        let key_path = self.write(&format!("{stem}.key"), &key.serialize_pem());
        Cert {
            sha256: sha256_hex(&der),
            der,
            cert_path,
            key_path,
            serial: serial_hex(&serial),
            subject: rfc4514(&spec.common_name),
            issuer: issuer_name,
            not_before: spec.not_before,
            not_after: spec.not_after,
            sans: spec.sans.clone(),
            key: spec.key.facts(),
            signature_algorithm: signed_with.signs_with(),
            is_ca: spec.is_ca,
            self_signed: issuer.is_none(),
            signer: Some((cert, key, spec.key)),
        }
    }

    /// `Example Root CA` -> `Example Issuing CA` (both ECDSA P-256) -> the leaf.
    pub fn chain(&self, leaf: Spec) -> Chain {
        let root = self.issue("root", Spec::ca("Example Root CA"), None);
        let intermediate = self.issue("intermediate", Spec::ca("Example Issuing CA"), Some(&root));
        let leaf = self.issue("leaf", leaf, Some(&intermediate));
        Chain {
            root,
            intermediate,
            leaf,
        }
    }

    fn key_pair(&self, name: &str, key: Key) -> KeyPair {
        match key {
            Key::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Key::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Key::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            Key::Rsa2048 => {
                let path = self.path(&format!("{name}-{}.rsa.key", hex::encode(next_serial())));
                let args = [
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ];
                openssl(&[&args[..], &["-out"]].concat(), &path);
                let pem = fs::read_to_string(&path).expect("openssl wrote the RSA key");
                KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
            }
        }
        .expect("generate a key pair")
    }
}

/// Now, to the second: certificates carry no fractions of a second.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .expect("now is a valid timestamp")
}

/// `O=Example` then `CN=...` in the DER, so RFC 4514 (last RDN first) reads `CN=...,O=Example`.
fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Example");
    name.push(DnType::CommonName, common_name);
    name
}

pub fn rfc4514(common_name: &str) -> String {
    format!("CN={common_name},O=Example")
}

fn san_type(san: &str) -> SanType {
    if let Ok(ip) = san.parse::<IpAddr>() {
        return SanType::IpAddress(ip);
    }
    let text = san.try_into().expect("SAN is ASCII");
    if san.contains("://") {
        SanType::URI(text)
    } else if san.contains('@') {
        SanType::Rfc822Name(text)
    } else {
        SanType::DnsName(text)
    }
}

/// Nine bytes whose first is 0x0c, so the hex form drops one leading zero ("c...").
pub(crate) fn next_serial() -> [u8; 9] {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let mut serial = [0x0c; 9];
    serial[1..].copy_from_slice(&(nanos.rotate_left(17) ^ count).to_be_bytes());
    serial
}

pub(crate) fn serial_hex(serial: &[u8]) -> String {
    let hex = hex::encode(serial);
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

pub(crate) fn path_str(path: &Path) -> String {
    path.to_str().expect("temporary paths are UTF-8").to_owned()
}

/// Runs `openssl ARGS... OUT` and panics with its stderr when it fails.
pub(crate) fn openssl(args: &[&str], out: &Path) {
    let output = Command::new("openssl")
        .args(args)
        .arg(out)
        .output()
        .expect("the openssl command line is installed");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
