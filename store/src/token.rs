//! Tokens: random, shown once, stored as a SHA-256, compared in constant time.
//!
//! An agent's token reads `cfa_<64 hex digits>`, an operator's `cfo_<64 hex digits>` (so
//! that a token found in a log or a repository says what it opens; what it may do is the
//! stored kind, never the prefix). The first [`LOOKUP_LEN`] hex digits are also
//! stored in clear as an index key, so authentication is one index probe followed by a
//! constant-time comparison of hashes, and the database never holds enough to rebuild
//! a token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::records::TokenKind;

/// Every prefix has this length.
const PREFIX_LEN: usize = 4;
const SECRET_BYTES: usize = 32;
/// Hex digits of the secret kept in clear as the lookup key (48 of its 256 bits).
pub const LOOKUP_LEN: usize = 12;

/// A newly generated token, with what the store keeps of it.
pub struct NewToken {
    /// The token to hand to the agent, once.
    pub token: String,
    /// Its lookup key.
    pub lookup: String,
    /// Its SHA-256.
    pub sha256: Vec<u8>,
}

fn prefix(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Agent => "cfa_",
        TokenKind::Operator => "cfo_",
    }
}

/// A fresh token of `kind` from the operating system's random source.
pub fn generate(kind: TokenKind) -> Result<NewToken> {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut secret)
        .map_err(|error| Error::other(format!("no randomness for a token: {error}")))?;
    let token = format!("{}{}", prefix(kind), hex::encode(secret));
    let lookup = token[PREFIX_LEN..PREFIX_LEN + LOOKUP_LEN].to_owned();
    let sha256 = hash(&token);
    Ok(NewToken {
        token,
        lookup,
        sha256,
    })
}

/// The lookup key of a presented token, or `None` when it cannot be one of ours.
pub fn lookup_of(token: &str) -> Option<&str> {
    let secret = [TokenKind::Agent, TokenKind::Operator]
        .into_iter()
        .find_map(|kind| token.strip_prefix(prefix(kind)))?;
    let well_formed = secret.len() == SECRET_BYTES * 2
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| &secret[..LOOKUP_LEN])
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether a presented token hashes to a stored hash, in time independent of where they
/// differ.
pub fn matches(token: &str, stored_sha256: &[u8]) -> bool {
    hash(token).as_slice().ct_eq(stored_sha256).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_look_themselves_up_and_match_their_hash() {
        for kind in [TokenKind::Agent, TokenKind::Operator] {
            let new = generate(kind).expect("randomness");
            assert_eq!(lookup_of(&new.token), Some(new.lookup.as_str()));
            assert!(matches(&new.token, &new.sha256));
            assert!(new.token.starts_with(prefix(kind)));
        }
        let new = generate(TokenKind::Operator).expect("randomness");
        assert!(!matches("cfa_0000", &new.sha256));
        assert_eq!(lookup_of("Bearer nonsense"), None);
    }
}
