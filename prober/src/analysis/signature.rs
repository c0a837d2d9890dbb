//! Certificate signature checks with ring, accepting the legacy algorithms and small RSA
//! keys that real fleets still serve: the question here is "who signed this", not "should
//! this be trusted" (that is `trust`'s job).

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::X509Certificate;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Outcome of checking a certificate's signature against a candidate issuer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Invalid,
    /// An algorithm ring cannot check (DSA, P-521, GOST...).
    Unsupported,
}

/// Checks `cert`'s signature with `issuer_key`.
pub fn check(cert: &X509Certificate<'_>, issuer_key: &SubjectPublicKeyInfo<'_>) -> SignatureCheck {
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    let curve = issuer_key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|params| params.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let candidates: &[&dyn VerificationAlgorithm] = match (algorithm.as_str(), curve.as_deref()) {
        ("1.2.840.113549.1.1.5" | "1.3.14.3.2.29", _) => {
            &[&signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY]
        }
        ("1.2.840.113549.1.1.11", _) => {
            &[&signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY]
        }
        ("1.2.840.113549.1.1.12", _) => &[&signature::RSA_PKCS1_2048_8192_SHA384],
        ("1.2.840.113549.1.1.13", _) => {
            &[&signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY]
        }
        ("1.2.840.113549.1.1.10", _) => &[
            &signature::RSA_PSS_2048_8192_SHA256,
            &signature::RSA_PSS_2048_8192_SHA384,
            &signature::RSA_PSS_2048_8192_SHA512,
        ],
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => {
            &[&signature::ECDSA_P256_SHA256_ASN1]
        }
        ("1.2.840.10045.4.3.2", Some("1.3.132.0.34")) => &[&signature::ECDSA_P384_SHA256_ASN1],
        ("1.2.840.10045.4.3.3", Some("1.2.840.10045.3.1.7")) => {
            &[&signature::ECDSA_P256_SHA384_ASN1]
        }
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &[&signature::ECDSA_P384_SHA384_ASN1],
        ("1.3.101.112", _) => &[&signature::ED25519],
        _ => return SignatureCheck::Unsupported,
    };
    let key_bytes: &[u8] = &issuer_key.subject_public_key.data;
    let signed = cert.tbs_certificate.as_ref();
    let signature_value: &[u8] = &cert.signature_value.data;
    let valid = candidates.iter().any(|alg| {
        UnparsedPublicKey::new(*alg, key_bytes)
            .verify(signed, signature_value)
            .is_ok()
    });
    if valid {
        SignatureCheck::Valid
    } else {
        SignatureCheck::Invalid
    }
}
