//! Trust stores and path validation (rustls-webpki): the bundled Mozilla roots plus any PEM
//! bundle the user configures, since internal PKIs are the norm in fleets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::certificate::ServedCertificate;

/// Why extra trust roots could not be loaded. The message says the cause; it is not also
/// a `source()`, so a printed chain says it once.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("CA file {path} holds no PEM certificate")]
    Empty { path: PathBuf },
    #[error("CA file {path}: certificate {index} is not a usable trust anchor: {reason}")]
    BadAnchor {
        path: PathBuf,
        index: usize,
        reason: String,
    },
}

/// Trust anchors and what chain analysis asks of them.
#[derive(Debug, Clone)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    /// Anchor subjects (Name contents, without the SEQUENCE header) for "is this issuer a
    /// root we know?".
    subjects: HashSet<Vec<u8>>,
    /// SHA-256 of every configured certificate: a self-signed leaf the user listed is trusted.
    pinned: HashSet<[u8; 32]>,
}

impl TrustStore {
    /// The Mozilla root program's anchors (webpki-roots).
    pub fn mozilla() -> Self {
        let anchors: Vec<TrustAnchor<'static>> = webpki_roots::TLS_SERVER_ROOTS.to_vec();
        let subjects = anchors
            .iter()
            .map(|anchor| anchor.subject.as_ref().to_vec())
            .collect();
        TrustStore {
            anchors,
            subjects,
            pinned: HashSet::new(),
        }
    }

    /// An empty store (nothing is trusted); for tests and for `--no-system-roots`.
    pub fn empty() -> Self {
        TrustStore {
            anchors: Vec::new(),
            subjects: HashSet::new(),
            pinned: HashSet::new(),
        }
    }

    /// Adds every certificate of a PEM file as a trust anchor. Returns how many.
    pub fn add_pem_file(&mut self, path: &Path) -> Result<usize, TrustError> {
        let pem = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_owned(),
            error: source,
        })?;
        let mut reader = pem.as_slice();
        let mut added = 0;
        for (index, item) in rustls_pemfile::certs(&mut reader).enumerate() {
            let der = item.map_err(|error| TrustError::BadAnchor {
                path: path.to_owned(),
                index,
                reason: error.to_string(),
            })?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|error| TrustError::BadAnchor {
                    path: path.to_owned(),
                    index,
                    reason: format!("{error:?}"),
                })?
                .to_owned();
            self.subjects.insert(anchor.subject.as_ref().to_vec());
            self.anchors.push(anchor);
            self.pinned.insert(Sha256::digest(der.as_ref()).into());
            added += 1;
        }
        if added == 0 {
            return Err(TrustError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(added)
    }

    /// Whether `issuer` (a Name's DER, with its SEQUENCE header) is the subject of an anchor.
    pub fn knows_subject(&self, issuer: &[u8]) -> bool {
        self.subjects.contains(name_contents(issuer))
    }

    /// Whether the served chain leads from its leaf to an anchor. Expiry is judged
    /// separately (findings `expired`, `not_yet_valid`), so the path is checked at a moment
    /// inside the leaf's validity.
    pub fn trusts(&self, chain: &[ServedCertificate], now: OffsetDateTime) -> bool {
        let Some(leaf) = chain.first() else {
            return false;
        };
        if self
            .pinned
            .contains(&<[u8; 32]>::from(Sha256::digest(&leaf.der)))
        {
            return true;
        }
        let leaf_der = CertificateDer::from(leaf.der.as_slice());
        let Ok(end_entity) = webpki::EndEntityCert::try_from(&leaf_der) else {
            return false;
        };
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|cert| CertificateDer::from(cert.der.as_slice()))
            .collect();
        let (from, until) = (leaf.info.not_before, leaf.info.not_after);
        if from > until {
            // Valid at no moment (notBefore after notAfter): no path can be verified, and
            // `clamp` would panic on the inverted range.
            return false;
        }
        let at = now.clamp(from, until);
        let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &intermediates,
                time,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .is_ok()
    }
}

/// The contents of a DER SEQUENCE (a Name), or the input if it is not one.
fn name_contents(der: &[u8]) -> &[u8] {
    let header = match der {
        [0x30, len, ..] if *len < 0x80 => 2,
        [0x30, 0x81, ..] => 3,
        [0x30, 0x82, ..] => 4,
        [0x30, 0x83, ..] => 5,
        _ => return der,
    };
    der.get(header..).unwrap_or(der)
}
