//! Read access: when `server.read_token` is set, every read needs it as a bearer token.
//! Agent tokens only ingest; they never read.

use axum::extract::{Request, State};
use axum::http::header;
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
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if same_secret(expected.as_bytes(), presented.as_bytes()) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
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
    use super::same_secret;

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

    /// A guard on the source: every secret comparison goes through a constant-time API
    /// (`subtle`'s `ct_eq`), never through `==` or a hand-rolled loop, which the compiler
    /// may turn into an early exit. Agent tokens and node keys are compared as SHA-256
    /// hashes (`certfleet_store::token::matches`).
    #[test]
    fn secrets_are_compared_with_a_constant_time_api() {
        let auth = include_str!("auth.rs");
        let body = auth
            .split("fn same_secret")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .expect("same_secret is defined here");
        assert!(body.contains(".ct_eq("), "same_secret: {body}");
        assert!(auth.contains("if same_secret(expected.as_bytes(), presented.as_bytes())"));

        let osquery = include_str!("handlers/osquery.rs");
        assert!(osquery.contains("use crate::auth::same_secret;"));
        assert!(osquery.contains("same_secret(secret.as_bytes(), request.enroll_secret"));
        assert!(
            !osquery.contains("fn same_secret"),
            "osquery has its own comparison"
        );

        let token = include_str!("../../store/src/token.rs");
        let matches = token
            .split("pub fn matches")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .expect("certfleet_store::token::matches");
        assert!(
            matches.contains("hash(token)") && matches.contains(".ct_eq(stored_sha256)"),
            "agent tokens are not compared as hashes in constant time: {matches}"
        );
    }
}
