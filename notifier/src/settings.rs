//! How the notifier behaves: built by the binary from `[notify]`, `[server]` and
//! `[[owners.rules]]`, with defaults for everything else.

use std::path::PathBuf;

use certfleet_model::redact_url;
use time::Duration;

use crate::error::{Error, Result};
use crate::owners::{is_address, OwnerRules};
use crate::webhook::{self, Webhook, RECIPIENT_PREFIX};

/// Where digests go.
#[derive(Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An SMTP URL: `smtp://host:port` (plain), `smtp://host:port?tls=opportunistic` or
    /// `?tls=required` (STARTTLS), `smtps://host:port` (TLS from the first byte);
    /// `user:password@` before the host for AUTH.
    Smtp(String),
    /// One `.eml` file per message in this directory (the embedded default).
    Files(PathBuf),
}

/// Hand-written so that an SMTP password never reaches a log.
impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Delivery::Smtp(url) => f.debug_tuple("Smtp").field(&redact_url(url)).finish(),
            Delivery::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
        }
    }
}

/// Retry delays after failed deliveries: `first`, doubling per attempt, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub first: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after the `attempts`-th failure (1 for the first).
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self.first.saturating_mul(1_i32 << doublings);
        delay.min(self.max)
    }
}

/// Everything the notifier needs to decide and deliver.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sender address (`notify.from`).
    pub from: String,
    /// Where digests go.
    pub delivery: Delivery,
    /// Base of the links in digests (`server.base_url`): `<base>/certificates/<sha256>`.
    pub base_url: String,
    /// Days before expiry at which owners are told (`notify.thresholds`).
    pub thresholds: Vec<u32>,
    /// Certificates whose whole lifetime is at most this many days are short-lived: they
    /// alert only when under a third of their lifetime is left (0: no such rule).
    pub short_lived_days: u32,
    /// Gets its own digest of everything that is due, for every owner
    /// (`notify.security_copy`).
    pub security_copy: Option<String>,
    /// Owner tag, rules, default owner.
    pub owners: OwnerRules,
    /// How long one run holds the notifications it is sending.
    pub lease_for: Duration,
    /// Owners leased per round trip.
    pub owners_per_lease: u32,
    /// Messages in flight at once (and SMTP connections in the pool).
    pub concurrency: usize,
    /// Certificates listed in one email at most (`notify.max_per_email`); an owner due
    /// more gets them in several messages, "[part 2 of 5]".
    pub max_per_email: usize,
    /// Delays between attempts.
    pub retry: Backoff,
    /// Deadline of one SMTP exchange.
    pub smtp_timeout: std::time::Duration,
    /// An endpoint last probed longer ago than this is probed again before mail about its
    /// certificate is sent (`notify.confirm_within`; needs a [`crate::Confirm`]).
    pub confirm_within: Duration,
    /// How long a run waits for those probes at most (`notify.confirm_wait`).
    pub confirm_wait: std::time::Duration,
    /// Receivers of digests over HTTP (`[[notify.webhooks]]`), beside the owners' mail.
    pub webhooks: Vec<Webhook>,
    /// Deadline of one webhook post (connect, TLS, request and answer); the connection
    /// alone gets a third of it.
    pub webhook_timeout: std::time::Duration,
    /// Signed "renewed? check again" links, one per socket serving an expiring
    /// certificate (`server.link_secret`); `None`: digests carry none.
    pub probe_links: Option<ProbeLinks>,
}

/// How the digests' "renewed? check again" links are signed.
#[derive(Debug, Clone)]
pub struct ProbeLinks {
    /// The server's link key (every API replica verifies with the same secret).
    pub key: certfleet_model::probe_link::LinkKey,
    /// How long a link is valid after the digest is rendered.
    pub lifetime: Duration,
}

impl Settings {
    /// Defaults (thresholds 30, 14, 7, 3, 1 days; `.eml` files in `outbox`) for `owners`.
    pub fn new(owners: OwnerRules) -> Self {
        Settings {
            from: "certfleet@localhost".into(),
            delivery: Delivery::Files(PathBuf::from("outbox")),
            base_url: "http://127.0.0.1:8080".into(),
            thresholds: vec![30, 14, 7, 3, 1],
            short_lived_days: 30,
            security_copy: None,
            owners,
            lease_for: Duration::minutes(10),
            owners_per_lease: 200,
            concurrency: 8,
            max_per_email: 500,
            retry: Backoff {
                first: Duration::minutes(1),
                max: Duration::hours(1),
            },
            smtp_timeout: std::time::Duration::from_secs(30),
            confirm_within: Duration::hours(1),
            confirm_wait: std::time::Duration::from_secs(60),
            webhooks: Vec::new(),
            webhook_timeout: std::time::Duration::from_secs(30),
            probe_links: None,
        }
    }

    /// Refuses settings that cannot work, naming the setting.
    pub fn check(&self) -> Result<()> {
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(Error::setting("notify.from", "not an email address"));
        }
        if self.thresholds.is_empty() {
            return Err(Error::setting("notify.thresholds", "needs at least one"));
        }
        if let Some(copy) = &self.security_copy {
            if !is_address(copy) {
                return Err(Error::setting(
                    "notify.security_copy",
                    "not an email address",
                ));
            }
        }
        if self.max_per_email == 0 {
            return Err(Error::setting("notify.max_per_email", "must be at least 1"));
        }
        webhook::check_all(&self.webhooks)?;
        if let Delivery::Smtp(url) = &self.delivery {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(Error::setting(
                    "notify.smtp_url",
                    "must start with smtp:// or smtps:// (or be empty for .eml files)",
                ));
            }
        }
        Ok(())
    }

    /// How far ahead candidates are read: the largest threshold anywhere, in days.
    pub fn window(&self) -> Duration {
        let largest = self
            .owners
            .largest_threshold()
            .max(self.thresholds.iter().copied().max());
        Duration::days(i64::from(
            largest.unwrap_or(0).max(self.short_lived_days / 3).max(1),
        ))
    }

    /// Where messages go, for people: `smtp://host:25` (password hidden), `.eml files in
    /// outbox`.
    pub fn delivery_name(&self) -> String {
        match &self.delivery {
            Delivery::Smtp(url) => redact_url(url),
            Delivery::Files(dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// The webhook an outbox recipient (`webhook:<name>`) names, if it is configured.
    pub fn webhook(&self, recipient: &str) -> Option<&Webhook> {
        let name = recipient.strip_prefix(RECIPIENT_PREFIX)?;
        self.webhooks.iter().find(|webhook| webhook.name == name)
    }

    /// The signed link that asks for `endpoint` to be probed now, valid for the links'
    /// lifetime from `now`; `None` without a link secret.
    pub fn probe_link(&self, endpoint: i64, now: time::OffsetDateTime) -> Option<String> {
        let links = self.probe_links.as_ref()?;
        let query = links.key.query(endpoint, now + links.lifetime);
        let base = self.base_url.trim_end_matches('/');
        Some(format!("{base}/probe-link?{query}"))
    }

    /// The link to a certificate's page.
    pub fn link(&self, sha256: &str) -> String {
        format!(
            "{}/certificates/{sha256}",
            self.base_url.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            first: Duration::minutes(1),
            max: Duration::minutes(10),
        };
        let delays: Vec<i64> = (1..=6).map(|n| backoff.delay(n).whole_minutes()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.delay(1000), Duration::minutes(10));
    }

    #[test]
    fn smtp_passwords_are_redacted() {
        let delivery = Delivery::Smtp("smtps://u:secret@mail".into());
        assert!(!format!("{delivery:?}").contains("secret"));
    }
}
