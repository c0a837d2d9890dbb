//! Posting a body to a webhook: signed, with deadlines, no redirects, and only the start
//! of the answer read. Whatever the receiver does costs one delivery its deadline.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use rustls::{ClientConfig, RootCertStore};

use super::Webhook;
use crate::error::{Error, Result};

/// Bytes of an answer read, for the reason of a failure; the rest is never read.
const MAX_ANSWER: usize = 1024;
/// Characters of an answer kept in the reason.
const ANSWER_CHARS: usize = 200;
/// The longest `Retry-After` honoured (the retry back-off's cap applies too).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Why a webhook did not take a digest. The message says it all (it is kept as the
/// notification's last error), so no variant is also a `source()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The receiver answered, but not with 2xx.
    #[error("HTTP {status}{}", answer_suffix(.answer))]
    Status {
        /// The status code.
        status: u16,
        /// The start of the answer's body, control characters replaced.
        answer: String,
        /// The receiver's `Retry-After`, in seconds (a 429 or 503).
        retry_after: Option<Duration>,
    },
    /// No answer: cannot connect, TLS refused, or the deadline passed.
    #[error("{0}")]
    Request(String),
}

fn answer_suffix(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(": {answer}")
    }
}

impl PostError {
    /// True when trying again cannot help by itself: a 4xx other than 408 (timeout) and
    /// 429 (too many requests), or a redirect (never followed). Still retried, slowly,
    /// and shown failing, so that a corrected receiver gets the digest.
    pub fn is_permanent(&self) -> bool {
        match self {
            PostError::Status { status, .. } => match status {
                408 | 429 => false,
                300..=499 => true,
                _ => false,
            },
            PostError::Request(_) => false,
        }
    }

    /// How long the receiver asked to wait (`Retry-After`, seconds; at most a day).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PostError::Status { retry_after, .. } => *retry_after,
            PostError::Request(_) => None,
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256, keyed with `secret`, of `<timestamp>.<body>`: the
/// `X-Certfleet-Signature` header. Signing the timestamp with the body lets a receiver
/// refuse a replayed request.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts to webhooks: one HTTP client (rustls, the Mozilla roots) for all of them.
#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Poster {
    /// A client whose every post (connect, TLS, request, answer) ends within `timeout`;
    /// the connection alone within a third of it. Redirects are not followed and proxies
    /// from the environment are not used.
    pub fn new(timeout: Duration) -> Result<Poster> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| Error::setting("notify.webhooks", error.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .user_agent(concat!("certfleet/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout / 3)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_only()
            .pool_idle_timeout(Duration::from_secs(30))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|error| Error::setting("notify.webhooks", chain(&error)))?;
        Ok(Poster { http, timeout })
    }

    /// Posts `body` to `webhook`, signed when it has a secret, at `timestamp` (Unix
    /// seconds), as the delivery `delivery`. `Ok` on a 2xx answer.
    pub async fn post(
        &self,
        webhook: &Webhook,
        body: String,
        delivery: &str,
        timestamp: i64,
    ) -> Result<(), PostError> {
        let mut request = self
            .http
            .post(webhook.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("X-Certfleet-Delivery", delivery)
            .header("X-Certfleet-Timestamp", timestamp.to_string());
        if let Some(secret) = &webhook.secret {
            let signature = signature(secret, timestamp, body.as_bytes());
            request = request.header("X-Certfleet-Signature", signature);
        }
        let mut answer = request.body(body).send().await.map_err(|error| {
            PostError::Request(if error.is_timeout() {
                format!("no answer within {:?}", self.timeout)
            } else {
                chain(&error)
            })
        })?;
        let status = answer.status().as_u16();
        if (200..300).contains(&status) {
            // Dropping the answer unread closes the connection if there is more of it.
            return Ok(());
        }
        let retry_after = answer.headers().get(RETRY_AFTER).and_then(seconds);
        let mut bytes = Vec::new();
        // A receiver that trickles its answer is cut off by the request's deadline.
        while bytes.len() < MAX_ANSWER {
            match answer.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        bytes.truncate(MAX_ANSWER);
        let answer = String::from_utf8_lossy(&bytes)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(ANSWER_CHARS)
            .collect::<String>()
            .trim()
            .to_owned();
        Err(PostError::Status {
            status,
            answer,
            retry_after,
        })
    }
}

/// A `Retry-After` of delta-seconds, at most a day (an HTTP date is ignored: the back-off
/// decides then).
fn seconds(value: &HeaderValue) -> Option<Duration> {
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// A reqwest error and its innermost cause ("connect: Connection refused"); the URL is
/// left out (a Slack URL is a secret).
fn chain(error: &reqwest::Error) -> String {
    let step = if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "receive"
    } else {
        "request"
    };
    let mut innermost = None;
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        innermost = Some(inner);
        cause = inner.source();
    }
    match innermost {
        Some(cause) => format!("{step}: {cause}"),
        // reqwest's own message names the URL; say only what kind of failure it was.
        None => format!("{step} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac s3cret
        let expected = "sha256=97926816e98fbb41ccb1673225ff29a2f35369099990e1b1561651e7bd097ebf";
        let computed = signature("s3cret", 1_700_000_000, b"{}");
        assert_eq!(computed, expected);
        assert_ne!(computed, signature("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(computed, signature("other", 1_700_000_000, b"{}"));
        assert_ne!(computed, signature("s3cret", 1_700_000_000, b"{ }"));
    }

    #[test]
    fn client_errors_are_permanent_except_timeout_and_too_many() {
        let status = |status| PostError::Status {
            status,
            answer: String::new(),
            retry_after: None,
        };
        for permanent in [301, 302, 400, 401, 403, 404, 410, 422] {
            assert!(status(permanent).is_permanent(), "{permanent}");
        }
        for retried in [408, 429, 500, 502, 503, 504] {
            assert!(!status(retried).is_permanent(), "{retried}");
        }
        assert!(!PostError::Request("connect: refused".into()).is_permanent());
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let value = |text: &'static str| HeaderValue::from_static(text);
        assert_eq!(seconds(&value("120")), Some(Duration::from_secs(120)));
        assert_eq!(seconds(&value(" 5 ")), Some(Duration::from_secs(5)));
        assert_eq!(seconds(&value("99999999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds(&value("Wed, 21 Oct 2026 07:28:00 GMT")), None);
        assert_eq!(seconds(&value("-1")), None);
    }
}
