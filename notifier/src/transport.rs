//! Delivery: SMTP through lettre (STARTTLS, TLS, AUTH, a connection pool), or one `.eml`
//! file per message when no SMTP server is configured.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::settings::{Backoff, Delivery, Settings};
use crate::webhook::PostError;
use certfleet_model::redact_url;

/// Why a message was not delivered; kept in the outbox as the notification's last error,
/// which is its message alone: so each message says its cause, and no variant also hands
/// it on as `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The message could not be built (a bad address).
    #[error("cannot build the message: {0}")]
    Message(String),
    /// The SMTP server refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(lettre::transport::smtp::Error),
    /// A webhook did not take the digest.
    #[error("webhook {name}: {error}{}", if error.is_permanent() { " (permanent: retried at the longest back-off)" } else { "" })]
    Webhook {
        /// The webhook's name.
        name: String,
        /// What happened.
        error: PostError,
    },
    /// The `.eml` file could not be written.
    #[error("cannot write {path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl DeliveryError {
    /// True when trying again cannot help (the SMTP server answered 5xx, or the message
    /// itself is bad). Such failures are still retried, slowly, and shown in the status.
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Message(_) => true,
            DeliveryError::Smtp(error) => error.is_permanent(),
            DeliveryError::Webhook { error, .. } => error.is_permanent(),
            DeliveryError::File { .. } => false,
        }
    }

    /// How long to wait before the next attempt, the `attempts`-th failure just recorded:
    /// the back-off; for a webhook, the longest back-off after a permanent failure (a 4xx:
    /// a corrected receiver still gets the digest), and at least what its `Retry-After`
    /// asked, up to the longest back-off.
    pub fn retry_delay(&self, backoff: &Backoff, attempts: u32) -> time::Duration {
        let delay = backoff.delay(attempts);
        let DeliveryError::Webhook { error, .. } = self else {
            return delay;
        };
        if error.is_permanent() {
            return backoff.max;
        }
        match error.retry_after().map(time::Duration::try_from) {
            Some(Ok(asked)) => delay.max(asked.min(backoff.max)),
            _ => delay,
        }
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Mailer {
    /// An SMTP relay, with pooled connections.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// A directory of `.eml` files.
    Files(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::Files(dir) => f.debug_tuple("Mailer::Files").field(dir).finish(),
        }
    }
}

impl Mailer {
    /// Builds the transport the settings name; no connection is made yet.
    pub fn new(settings: &Settings) -> Result<Mailer> {
        match &settings.delivery {
            Delivery::Smtp(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
                    Error::setting("notify.smtp_url", format!("{}: {e}", redact_url(url)))
                })?;
                let pool = PoolConfig::new()
                    .max_size(u32::try_from(settings.concurrency.max(1)).unwrap_or(8))
                    .idle_timeout(std::time::Duration::from_secs(30));
                let transport = builder
                    .timeout(Some(settings.smtp_timeout))
                    .pool_config(pool)
                    .build();
                Ok(Mailer::Smtp(transport))
            }
            Delivery::Files(dir) => Ok(Mailer::Files(dir.clone())),
        }
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<(), DeliveryError> {
        match self {
            Mailer::Smtp(transport) => {
                transport.send(message).await.map_err(DeliveryError::Smtp)?;
                Ok(())
            }
            Mailer::Files(dir) => write_eml(dir, &message.formatted()).await,
        }
    }
}

/// Builds the MIME message of a digest: multipart/alternative, text then HTML.
pub fn message(from: &str, digest: &Digest) -> Result<Message, DeliveryError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| DeliveryError::Message(format!("from {from:?}: {e}")))?;
    let to: Mailbox = digest
        .to
        .parse()
        .map_err(|e| DeliveryError::Message(format!("to {:?}: {e}", digest.to)))?;
    // Line endings are made CRLF here, in one pass: lettre would otherwise insert each
    // `\r` in place, which is quadratic in the size of a large digest.
    let parts = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(crlf(&digest.text)),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(crlf(&digest.html)),
        );
    Message::builder()
        .from(from)
        .to(to)
        .subject(digest.subject.clone())
        .message_id(None)
        .multipart(parts)
        .map_err(|e| DeliveryError::Message(e.to_string()))
}

/// `text` with every line ending as CRLF.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    for line in text.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(line) => {
                out.push_str(line.strip_suffix('\r').unwrap_or(line));
                out.push_str("\r\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Writes a message under a unique name, whole or not at all (temporary file, then
/// rename).
async fn write_eml(dir: &Path, bytes: &[u8]) -> Result<(), DeliveryError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeliveryError::File {
            path,
            error: source,
        }
    };
    tokio::fs::create_dir_all(dir).await.map_err(failed(dir))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{stamp}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let partial = dir.join(format!(".{name}.tmp"));
    let path = dir.join(format!("{name}.eml"));
    tokio::fs::write(&partial, bytes)
        .await
        .map_err(failed(&partial))?;
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(failed(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_become_crlf_once() {
        assert_eq!(crlf("a\nb\r\nc"), "a\r\nb\r\nc");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
        assert_eq!(crlf(""), "");
    }
}
