//! Test certificates: made with rcgen, described by the prober's own analysis, as a probe
//! would report them.

use certfleet_model::CertificateInfo;
use certfleet_prober::analysis::ServedCertificate;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
};
use time::OffsetDateTime;

/// A certificate made for the tests, with what the prober would report for it.
pub struct Issued {
    pub der: Vec<u8>,
    pub info: CertificateInfo,
    /// SHA-1 of the DER, lowercase hex.
    pub sha1: String,
    key: KeyPair,
    pub certificate: rcgen::Certificate,
}

/// A certificate for `common_name` and `sans` (a CA when it has neither issuer nor SAN),
/// signed by `issuer` or self-signed.
pub fn issue(
    common_name: &str,
    sans: &[&str],
    serial: &[u8],
    lifetime: (OffsetDateTime, OffsetDateTime),
    issuer: Option<&Issued>,
) -> Issued {
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("certificate parameters");
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "Example");
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = lifetime.0;
    params.not_after = lifetime.1;
    if issuer.is_none() && sans.is_empty() {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let key = KeyPair::generate().expect("a P-256 key");
    let certificate = match issuer {
        Some(issuer) => params
            .signed_by(&key, &issuer.certificate, &issuer.key)
            .expect("signed"),
        None => params.self_signed(&key).expect("self-signed"),
    };
    let der = certificate.der().to_vec();
    let mut info = ServedCertificate::from_der(der.clone()).info;
    assert!(info.parse_error.is_none(), "the prober parses it");
    info.pem = Some(certificate.pem());
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Issued {
        der,
        info,
        sha1: hex(sha1.as_ref()),
        key,
        certificate,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
