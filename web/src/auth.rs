//! Read access: when `server.read_token` is set, every read needs it as a bearer token.
//! Agent tokens only ingest; they never read.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

pub async fn require_read_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state.read_token.as_deref() else {
        return Ok(next.run(request).await);
    };
    if presents(request.headers(), expected) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Whether `headers` carry `Authorization: Bearer <expected>`.
fn presents(headers: &HeaderMap, expected: &str) -> bool {
    let presented = bearer(headers).unwrap_or("");
    same_secret(expected.as_bytes(), presented.as_bytes())
}

/// The token of an `Authorization: Bearer <token>` header, trimmed; `None` when there is
/// none or it is empty. Callers bound its length as their tokens need.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether a presented secret (read token, osquery enroll secret) equals the configured
/// one, in time that depends only on the lengths: `subtle`'s constant-time comparison,
/// which the optimiser cannot turn into an early exit. The length of the configured
/// secret is not itself a secret.
pub(crate) fn same_secret(expected: &[u8], presented: &[u8]) -> bool {
    expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
}

#[cfg(test)]
mod tests {
    use super::{header, presents, same_secret, HeaderMap};

    #[test]
    fn same_secret_accepts_only_the_exact_bytes() {
        assert!(same_secret(b"rt-0123456789abcdef", b"rt-0123456789abcdef"));
        assert!(!same_secret(b"rt-0123456789abcdef", b"xt-0123456789abcdef"));
        assert!(!same_secret(b"rt-0123456789abcdef", b"rt-0123456789abcdeX"));
        assert!(!same_secret(b"rt-0123456789abcdef", b"rt-0123456789abcde"));
        assert!(!same_secret(
            b"rt-0123456789abcdef",
            b"rt-0123456789abcdef0"
        ));
        assert!(!same_secret(b"rt-0123456789abcdef", b""));
    }

    /// The read token is taken exactly: only `Bearer <token>` in `Authorization`, with
    /// no byte changed at either end, no prefix of it and nothing added (whitespace
    /// around it aside). Agent tokens and node keys are compared as SHA-256 hashes in
    /// the store (`certfleet_store::token::matches`, tested there).
    #[test]
    fn read_access_takes_exactly_the_configured_bearer_token() {
        const TOKEN: &str = "rt-0123456789abcdef";
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                value.parse().expect("a header value"),
            );
            headers
        };
        assert!(presents(&with(&format!("Bearer {TOKEN}")), TOKEN));
        assert!(presents(&with(&format!("Bearer {TOKEN}  ")), TOKEN));
        for refused in [
            "Bearer xt-0123456789abcdef".to_owned(),
            "Bearer rt-0123456789abcdeX".to_owned(),
            "Bearer rt-0123456789abcde".to_owned(),
            format!("Bearer {TOKEN}0"),
            format!("bearer {TOKEN}"),
            format!("Basic {TOKEN}"),
            TOKEN.to_owned(),
            "Bearer ".to_owned(),
        ] {
            assert!(!presents(&with(&refused), TOKEN), "{refused:?}");
        }
        assert!(!presents(&HeaderMap::new(), TOKEN), "no header");
    }
}
