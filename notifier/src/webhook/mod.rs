//! Webhooks: digests posted as JSON (certfleet's own document, or a Slack message) to
//! HTTP receivers, from the same durable outbox as mail.
//!
//! A webhook is one more recipient of the outbox: its rows carry the owner
//! `webhook:<name>`, so they are claimed once per (certificate, webhook, level), leased,
//! retried with back-off, resolved and shown failing exactly as an owner's mail is. Only
//! the last step differs: the digest is rendered as a JSON body ([`render`]) and posted,
//! signed with HMAC-SHA256 ([`post`]).

mod post;
mod render;

use std::net::IpAddr;

use reqwest::Url;

use crate::error::{Error, Result};
use crate::owners::is_address;

pub use post::{signature, PostError, Poster};
pub use render::{body, delivery_id};

/// The owner column's prefix for webhook recipients: never an email address, so it cannot
/// be mistaken for (or collide with) an owner.
pub const RECIPIENT_PREFIX: &str = "webhook:";

/// At most this many webhooks: each one is a recipient of every digest it serves.
pub const MAX_WEBHOOKS: usize = 64;

/// At most this many certificates in one post (about 0.7 MB of JSON); a larger digest is
/// posted in parts, each its own delivery of its own outbox rows.
pub const MAX_ITEMS: usize = 1_000;

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// certfleet's digest document (docs/notifications.md, "Webhooks").
    Json,
    /// A Slack incoming-webhook message: `{"text": ..., "blocks": [...]}`.
    Slack,
}

impl Format {
    /// `json` or `slack`, as written in the configuration.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "json" => Some(Format::Json),
            "slack" => Some(Format::Slack),
            _ => None,
        }
    }
}

/// One `[[notify.webhooks]]` entry, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Names it in the outbox (`webhook:<name>`), the status and the logs.
    pub name: String,
    /// Where digests are posted: `https://`, or `http://` to a loopback address.
    pub url: Url,
    /// The body's format.
    pub format: Format,
    /// Owners (email addresses) whose certificates it is told about.
    pub owners: Vec<String>,
    /// Apps (`app` tags) whose certificates it is told about.
    pub apps: Vec<String>,
    /// Key of the `X-Certfleet-Signature` HMAC; `None`: requests are not signed.
    pub secret: Option<String>,
}

/// What a `[[notify.webhooks]]` entry says, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSpec {
    /// `name`; empty: derived from the URL's host and a hash of the whole URL.
    pub name: Option<String>,
    /// `url`.
    pub url: String,
    /// `format`: `json` or `slack`.
    pub format: String,
    /// `owners`.
    pub owners: Vec<String>,
    /// `apps`.
    pub apps: Vec<String>,
    /// `secret` (or what `secret_file` holds); empty: none.
    pub secret: String,
}

/// Hand-written so that neither the secret nor the URL (a Slack URL is itself a secret)
/// reaches a log.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("host", &self.url.host_str())
            .field("format", &self.format)
            .field("owners", &self.owners)
            .field("apps", &self.apps)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Webhook {
    /// Checks the `index`-th `[[notify.webhooks]]` entry: the URL (`https://`, or
    /// `http://` only to a loopback address; no user info), the format, and the owners.
    /// An empty secret posts unsigned, as the configuration contract says ("signature
    /// header when set"); for `json` that is allowed but warned about, since a receiver
    /// cannot then tell certfleet's digests from forged ones (Slack authenticates by its
    /// URL instead).
    pub fn new(index: usize, spec: WebhookSpec) -> Result<Webhook> {
        let setting = |key: &str| format!("notify.webhooks[{index}].{key}");
        let url =
            check_url(&spec.url).map_err(|message| Error::setting(setting("url"), message))?;
        let format = Format::parse(&spec.format).ok_or_else(|| {
            let message = format!("{:?}: expected \"json\" or \"slack\"", spec.format);
            Error::setting(setting("format"), message)
        })?;
        let secret = Some(spec.secret).filter(|secret| !secret.is_empty());
        if format == Format::Json && secret.is_none() {
            tracing::warn!(
                setting = %setting("secret"),
                "webhook digests will be posted unsigned: set secret or secret_file"
            );
        }
        if let Some(bad) = spec.owners.iter().find(|owner| !is_address(owner)) {
            let message = format!("{bad:?} is not an email address");
            return Err(Error::setting(setting("owners"), message));
        }
        let name = match spec.name.map(|name| name.trim().to_owned()) {
            Some(name) if !name.is_empty() => name,
            _ => default_name(&url),
        };
        if name.len() > 100 || name.chars().any(char::is_control) {
            return Err(Error::setting(
                setting("name"),
                "at most 100 characters, no control characters",
            ));
        }
        Ok(Webhook {
            name,
            url,
            format,
            owners: spec.owners,
            apps: spec.apps,
            secret,
        })
    }

    /// Its recipient in the outbox: `webhook:<name>`.
    pub fn recipient(&self) -> String {
        format!("{RECIPIENT_PREFIX}{}", self.name)
    }

    /// Whether it is told about an endpoint of `owner` with this `app` tag: with neither
    /// `owners` nor `apps` set, about every endpoint (like `notify.security_copy`);
    /// otherwise when the owner is one of `owners` or the app one of `apps`.
    pub fn serves(&self, owner: &str, app: Option<&str>) -> bool {
        if self.owners.is_empty() && self.apps.is_empty() {
            return true;
        }
        self.owners.iter().any(|o| o.eq_ignore_ascii_case(owner))
            || app.is_some_and(|app| self.apps.iter().any(|a| a == app))
    }
}

/// Checks the webhooks together: at most [`MAX_WEBHOOKS`], names unique.
pub fn check_all(webhooks: &[Webhook]) -> Result<()> {
    if webhooks.len() > MAX_WEBHOOKS {
        return Err(Error::setting(
            "notify.webhooks",
            format!("at most {MAX_WEBHOOKS} webhooks"),
        ));
    }
    for (index, webhook) in webhooks.iter().enumerate() {
        if webhooks[..index].iter().any(|w| w.name == webhook.name) {
            return Err(Error::setting(
                format!("notify.webhooks[{index}].name"),
                format!("{:?} names two webhooks", webhook.name),
            ));
        }
    }
    Ok(())
}

/// `https://` anywhere, `http://` only to a loopback address (a receiver on the same
/// machine): digests must not cross a network in clear. No user info: it would be sent
/// in clear in logs and status lines.
fn check_url(text: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|error| format!("not a URL: {error}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("no user or password in the URL (use secret for authentication)".into());
    }
    let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
        return Err("the URL has no host".into());
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "http:// is allowed only to a loopback address (127.0.0.1, ::1, localhost); \
             use https:// for {}",
            host
        )),
        other => Err(format!(
            "scheme {other}: must be https:// (or http:// to loopback)"
        )),
    }
}

/// `<host>-<8 hex>`: the host and a hash of the whole URL, so that a webhook keeps its
/// name (its outbox rows) when others are added or reordered, and a URL that is itself a
/// secret (Slack's) is not written anywhere.
fn default_name(url: &Url) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(url.as_str().as_bytes());
    format!(
        "{}-{}",
        url.host_str().unwrap_or("webhook"),
        hex::encode(&hash[..4])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, format: &str, secret: &str) -> WebhookSpec {
        WebhookSpec {
            url: url.into(),
            format: format.into(),
            secret: secret.into(),
            ..WebhookSpec::default()
        }
    }

    fn refused(spec: WebhookSpec) -> String {
        match Webhook::new(2, spec) {
            Ok(webhook) => panic!("accepted: {webhook:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn https_anywhere_and_http_only_to_loopback_are_accepted() {
        for url in [
            "https://hooks.example.com/certfleet",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
            "http://localhost/hook",
        ] {
            let webhook = Webhook::new(0, spec(url, "json", "s3cret")).expect(url);
            assert_eq!(
                webhook.url.as_str().trim_end_matches('/'),
                url.trim_end_matches('/')
            );
        }
    }

    #[test]
    fn bad_urls_are_refused_naming_the_entry() {
        let cases = [
            (
                "http://hooks.example.com/x",
                "http:// is allowed only to a loopback",
            ),
            ("http://10.0.0.1/x", "http:// is allowed only to a loopback"),
            ("ftp://hooks.example.com/x", "scheme ftp"),
            ("hooks.example.com/x", "not a URL"),
            ("", "not a URL"),
            ("https://user:pw@hooks.example.com/x", "no user or password"),
            ("unix:/run/hook.sock", "no host"),
        ];
        for (url, expected) in cases {
            let message = refused(spec(url, "slack", ""));
            assert!(
                message.contains("notify.webhooks[2].url"),
                "{url}: {message}"
            );
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let message = refused(spec("https://h.example.com/", "xml", "s"));
        assert!(message.contains("notify.webhooks[2].format"), "{message}");
        assert!(message.contains("\"json\" or \"slack\""), "{message}");
        let message = refused(spec("https://h.example.com/", "JSON", "s"));
        assert!(message.contains("format"), "{message}");
    }

    #[test]
    fn an_empty_secret_posts_unsigned_in_either_format() {
        let json = Webhook::new(0, spec("https://h.example.com/", "json", ""))
            .expect("json without a secret, as the contract's example has it");
        assert_eq!(json.secret, None);
        let slack = Webhook::new(
            0,
            spec("https://hooks.slack.com/services/T/B/X", "slack", ""),
        )
        .expect("slack without a secret");
        assert_eq!(slack.secret, None);
    }

    #[test]
    fn a_default_name_hides_the_url_and_stays_put() {
        let url = "https://hooks.slack.com/services/T0/B0/very-secret";
        let first = Webhook::new(0, spec(url, "slack", "")).expect("valid");
        let again = Webhook::new(5, spec(url, "slack", "")).expect("valid");
        assert_eq!(first.name, again.name);
        assert!(first.name.starts_with("hooks.slack.com-"), "{}", first.name);
        assert!(!first.name.contains("secret"));
        assert!(!first.recipient().contains("secret"));
        assert!(!format!("{first:?}").contains("secret\""));
        assert!(!format!("{first:?}").contains("very-secret"));
    }

    #[test]
    fn owners_must_be_addresses() {
        let mut typo = spec("https://h.example.com/", "slack", "");
        typo.owners = vec!["billing@example.com".into(), "billing-team".into()];
        let message = refused(typo);
        assert!(message.contains("notify.webhooks[2].owners"), "{message}");
        assert!(message.contains("billing-team"), "{message}");
    }

    #[test]
    fn hostile_names_are_refused() {
        let mut hostile = spec("https://h.example.com/", "slack", "");
        hostile.name = Some("a\nb".into());
        assert!(refused(hostile.clone()).contains("name"));
        hostile.name = Some("x".repeat(101));
        assert!(refused(hostile).contains("name"));
    }

    #[test]
    fn owners_and_apps_select_what_a_webhook_is_told() {
        let mut all = Webhook::new(0, spec("https://h.example.com/", "slack", "")).expect("ok");
        assert!(all.serves("anyone@example.com", None));
        all.owners = vec!["Billing@example.com".into()];
        all.apps = vec!["payments".into()];
        assert!(all.serves("billing@example.com", Some("web")));
        assert!(all.serves("ops@example.com", Some("payments")));
        assert!(!all.serves("ops@example.com", Some("web")));
        assert!(!all.serves("ops@example.com", None));
    }

    #[test]
    fn two_webhooks_may_not_share_a_name() {
        let mut a = spec("https://a.example.com/", "slack", "");
        a.name = Some("team".into());
        let mut b = spec("https://b.example.com/", "slack", "");
        b.name = Some("team".into());
        let hooks = vec![
            Webhook::new(0, a).expect("ok"),
            Webhook::new(1, b).expect("ok"),
        ];
        let message = check_all(&hooks).expect_err("duplicate").to_string();
        assert!(message.contains("notify.webhooks[1].name"), "{message}");
    }
}
