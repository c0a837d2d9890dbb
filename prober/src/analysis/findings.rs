//! The findings of one served chain.

use certfleet_model::Finding;
use time::{Duration, OffsetDateTime};

use super::certificate::ServedCertificate;
use super::names::dns_name_matches;
use super::trust::TrustStore;

/// A leaf that expires within this window gets `expires_soon`.
const EXPIRES_SOON: Duration = Duration::days(30);

/// What the prober knew besides the chain.
pub struct Context<'a> {
    /// The SNI name sent; hostname matching is judged only when there was one.
    pub sni: Option<&'a str>,
    /// The best version the server spoke is below TLS 1.2.
    pub legacy_protocol: bool,
    pub now: OffsetDateTime,
    pub trust: &'a TrustStore,
}

/// Findings for `chain` (leaf first, as sent), sorted and without duplicates.
pub fn findings(chain: &[ServedCertificate], context: &Context<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    if context.legacy_protocol {
        found.push(Finding::LegacyProtocol);
    }
    let Some(leaf) = chain.first() else {
        return found;
    };
    if !context.trust.trusts(chain, context.now) {
        found.push(Finding::Untrusted);
    }
    let Some(leaf_parts) = &leaf.parsed else {
        found.sort();
        return found;
    };
    let info = &leaf.info;
    if context.now > info.not_after {
        found.push(Finding::Expired);
    } else if info.not_after - context.now < EXPIRES_SOON {
        found.push(Finding::ExpiresSoon);
    }
    if context.now < info.not_before {
        found.push(Finding::NotYetValid);
    }
    if info.self_signed {
        found.push(Finding::SelfSigned);
    }
    if let Some(sni) = context.sni {
        if !leaf_parts
            .dns_names
            .iter()
            .any(|pattern| dns_name_matches(pattern, sni))
        {
            found.push(Finding::HostnameMismatch);
        }
    }
    if chain.iter().any(is_weak) {
        found.push(Finding::WeakKey);
    }
    let sha1 = chain.iter().any(|cert| {
        cert.parsed.as_ref().is_some_and(|parts| parts.sha1_signed) && !cert.info.self_signed
    });
    if sha1 {
        found.push(Finding::Sha1Signature);
    }
    let expires_first = chain[1..].iter().any(|cert| {
        cert.parsed.is_some() && cert.info.is_ca && cert.info.not_after < info.not_after
    });
    if expires_first {
        found.push(Finding::ChainExpiresFirst);
    }
    let path = issuer_path(chain);
    if path
        .iter()
        .enumerate()
        .any(|(position, &index)| position != index)
        || leaf_not_first(chain)
    {
        found.push(Finding::WrongOrder);
    }
    if let Some(&top) = path.last() {
        let top_cert = &chain[top];
        let issuer_known = top_cert
            .parsed
            .as_ref()
            .is_some_and(|parts| context.trust.knows_subject(&parts.issuer));
        if top == 0 && !top_cert.info.self_signed && !issuer_known {
            found.push(Finding::IncompleteChain);
        }
    }
    found.sort();
    found.dedup();
    found
}

fn is_weak(cert: &ServedCertificate) -> bool {
    let key = &cert.info.key;
    match key.kind.as_str() {
        "rsa" | "dsa" => key.bits < 2048,
        "ecdsa" => key.bits < 256,
        _ => false,
    }
}

/// Indices of the chain from the leaf upwards, following issuer names among the sent
/// certificates (each used once), stopping at a self-issued certificate.
fn issuer_path(chain: &[ServedCertificate]) -> Vec<usize> {
    let mut path = vec![0];
    let mut current = 0;
    while let Some(parts) = &chain[current].parsed {
        if parts.subject == parts.issuer {
            break;
        }
        let next = chain.iter().enumerate().position(|(index, candidate)| {
            !path.contains(&index)
                && candidate
                    .parsed
                    .as_ref()
                    .is_some_and(|c| c.subject == parts.issuer)
        });
        match next {
            Some(index) => {
                path.push(index);
                current = index;
            }
            None => break,
        }
    }
    path
}

/// The first certificate is a CA that issued a non-CA certificate sent later: the leaf is
/// not where it belongs.
fn leaf_not_first(chain: &[ServedCertificate]) -> bool {
    let Some(first) = chain.first().and_then(|cert| cert.parsed.as_ref()) else {
        return false;
    };
    chain[0].info.is_ca
        && chain[1..].iter().any(|cert| {
            !cert.info.is_ca
                && cert
                    .parsed
                    .as_ref()
                    .is_some_and(|p| p.issuer == first.subject)
        })
}
