//! Signed "renewed? check again" links: a digest email carries, per endpoint, a link that
//! asks for the endpoint to be probed now. The link is its own credential (the reader of
//! the mail has no token), so it is signed with a server secret (HMAC-SHA256) and expires;
//! what it can do is one rate-limited probe request of one endpoint.
//!
//! A link's query reads `endpoint=<id>&expires=<Unix seconds>&signature=<64 hex digits>`;
//! the signature covers a version tag, the endpoint and the expiry, so neither can be
//! changed without the secret. Verification checks the form first, then the signature (in
//! constant time, `hmac`'s `verify_slice`), then the expiry: an expired link is only ever
//! reported as expired when it is genuine.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// Fewest bytes of secret accepted: the size of the HMAC-SHA256 output.
pub const MIN_SECRET_LEN: usize = 32;

/// What is signed, before the endpoint and expiry: a new link format changes it.
const CONTEXT: &str = "certfleet probe-link v1";

/// Hex digits of a signature.
const SIGNATURE_LEN: usize = 64;

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A part is missing or not of the link's form; names the part.
    #[error("malformed link: {0} is missing or not valid")]
    Malformed(&'static str),
    /// Well formed, but not signed by this server for this endpoint and expiry (tampered
    /// with, or signed with another secret).
    #[error("the link's signature does not match: it was changed or is not from this server")]
    BadSignature,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired,
    /// The configured secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("a link secret needs at least {MIN_SECRET_LEN} bytes")]
    ShortSecret,
}

/// The server's link secret, ready to sign and verify. Its `Debug` never shows it.
#[derive(Clone)]
pub struct LinkKey(HmacSha256);

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

/// The parts of a link, as text from a query or a form (a missing part is empty, and
/// refused as malformed by [`LinkKey::verify`], which names it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct LinkParts {
    pub endpoint: String,
    pub expires: String,
    pub signature: String,
}

impl LinkKey {
    /// A key from the configured secret (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(secret: &[u8]) -> Result<LinkKey, LinkError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(LinkError::ShortSecret);
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| LinkError::ShortSecret)?;
        Ok(LinkKey(mac))
    }

    /// The query of a link for `endpoint`, valid until `expires` (whole seconds).
    pub fn query(&self, endpoint: i64, expires: OffsetDateTime) -> String {
        let expires = expires.unix_timestamp();
        let mut mac = self.0.clone();
        mac.update(message(endpoint, expires).as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        format!("endpoint={endpoint}&expires={expires}&signature={signature}")
    }

    /// The endpoint a link asks for, if it is well formed, signed by this key and not
    /// expired at `now`.
    pub fn verify(&self, parts: &LinkParts, now: OffsetDateTime) -> Result<i64, LinkError> {
        let endpoint = number(&parts.endpoint).ok_or(LinkError::Malformed("endpoint"))?;
        let expires = number(&parts.expires).ok_or(LinkError::Malformed("expires"))?;
        let signature = unhex(&parts.signature).ok_or(LinkError::Malformed("signature"))?;
        let mut mac = self.0.clone();
        mac.update(message(endpoint, expires).as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        if now.unix_timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        Ok(endpoint)
    }
}

fn message(endpoint: i64, expires: i64) -> String {
    format!("{CONTEXT}\n{endpoint}\n{expires}")
}

/// A positive decimal number of at most 18 digits, without sign or leading zeros: one
/// spelling per value, so what is verified is what was signed.
fn number(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= 18
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    canonical.then(|| text.parse().ok()).flatten()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// 32 bytes from 64 lowercase hex digits.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != SIGNATURE_LEN {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    const NOW: OffsetDateTime = datetime!(2026-12-05 10:00 UTC);

    fn key(secret: &str) -> LinkKey {
        LinkKey::new(secret.as_bytes()).expect("long enough")
    }

    fn parts(query: &str) -> LinkParts {
        let mut parts = LinkParts::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').expect("name=value");
            let value = value.to_owned();
            match name {
                "endpoint" => parts.endpoint = value,
                "expires" => parts.expires = value,
                "signature" => parts.signature = value,
                other => panic!("unexpected {other}"),
            }
        }
        parts
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let key = key(SECRET);
        let link = parts(&key.query(42, NOW + Duration::days(7)));
        assert_eq!(key.verify(&link, NOW), Ok(42));
        assert_eq!(
            key.verify(&link, NOW + Duration::days(7) - Duration::seconds(1)),
            Ok(42)
        );
        assert_eq!(
            key.verify(&link, NOW + Duration::days(7)),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn a_changed_endpoint_expiry_or_signature_is_refused() {
        let key = key(SECRET);
        let genuine = parts(&key.query(42, NOW + Duration::days(7)));
        let other_endpoint = LinkParts {
            endpoint: "43".into(),
            ..genuine.clone()
        };
        let later = LinkParts {
            expires: (NOW + Duration::days(700)).unix_timestamp().to_string(),
            ..genuine.clone()
        };
        let mut flipped = genuine.clone();
        let last = if flipped.signature.ends_with('0') {
            "1"
        } else {
            "0"
        };
        flipped.signature.pop();
        flipped.signature.push_str(last);
        for tampered in [other_endpoint, later, flipped] {
            assert_eq!(
                key.verify(&tampered, NOW),
                Err(LinkError::BadSignature),
                "{tampered:?}"
            );
        }
        let other_server =
            super::LinkKey::new(b"another secret of thirty-two bytes!").expect("key");
        assert_eq!(
            other_server.verify(&genuine, NOW),
            Err(LinkError::BadSignature)
        );
        // An expired link that was tampered with says tampered, not expired.
        let expired_and_changed = LinkParts {
            endpoint: "43".into(),
            ..genuine
        };
        let later_now = NOW + Duration::days(30);
        assert_eq!(
            key.verify(&expired_and_changed, later_now),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn malformed_parts_are_named() {
        let key = key(SECRET);
        let genuine = parts(&key.query(42, NOW + Duration::days(7)));
        let with = |endpoint: &str, expires: &str, signature: &str| LinkParts {
            endpoint: endpoint.into(),
            expires: expires.into(),
            signature: signature.into(),
        };
        let (e, x, s) = (&genuine.endpoint, &genuine.expires, &genuine.signature);
        for (bad, part) in [
            (with("", x, s), "endpoint"),
            (with("-42", x, s), "endpoint"),
            (with("042", x, s), "endpoint"),
            (with("+42", x, s), "endpoint"),
            (with("4 2", x, s), "endpoint"),
            (with("99999999999999999999999", x, s), "endpoint"),
            (with(e, "", s), "expires"),
            (with(e, "1e9", s), "expires"),
            (with(e, x, ""), "signature"),
            (with(e, x, &s.to_uppercase()), "signature"),
            (with(e, x, &s[..62]), "signature"),
            (with(e, x, &format!("{s}00")), "signature"),
            (with(e, x, &"zz".repeat(32)), "signature"),
            (with(e, x, &"é".repeat(32)), "signature"),
        ] {
            assert_eq!(
                key.verify(&bad, NOW),
                Err(LinkError::Malformed(part)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused_and_never_printed() {
        assert_eq!(
            LinkKey::new(b"short").map(|_| ()),
            Err(LinkError::ShortSecret)
        );
        let key = key(SECRET);
        assert!(!format!("{key:?}").contains("0123"));
    }
}
