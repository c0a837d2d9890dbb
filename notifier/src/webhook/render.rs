//! A digest as a webhook body: certfleet's JSON document, or a Slack message.

use serde_json::{json, Value};
use sha2::Digest as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Format, Webhook};
use crate::digest::{display_name, names, time_left, Item, Reason};
use crate::plan::ServedAt;
use crate::policy::Level;
use crate::settings::Settings;

/// Slack accepts at most 50 blocks and 3,000 characters in a section's text.
const SLACK_ITEMS: usize = 45;
const SLACK_SECTION: usize = 2_900;

/// The `X-Certfleet-Delivery` value of a digest of these outbox rows: the lowest id and
/// a hash of them all. A retry of the same rows carries the same value, so a receiver can
/// drop a repeat (a digest whose success answer was lost is posted again).
pub fn delivery_id(ids: &[i64]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let joined = sorted
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let hash = sha2::Sha256::digest(joined.as_bytes());
    format!(
        "{}-{}",
        sorted.first().copied().unwrap_or(0),
        hex::encode(&hash[..8])
    )
}

/// The request body for `webhook` of a digest of `items` (already in urgency order),
/// delivering the outbox rows `ids`.
pub fn body(
    webhook: &Webhook,
    subject: &str,
    items: &[Item<'_>],
    ids: &[i64],
    settings: &Settings,
    now: OffsetDateTime,
) -> String {
    let document = match webhook.format {
        Format::Json => document(webhook, subject, items, ids, settings, now),
        Format::Slack => slack(subject, items, settings, now),
    };
    document.to_string()
}

/// certfleet's digest document, version 1 (docs/notifications.md).
fn document(
    webhook: &Webhook,
    subject: &str,
    items: &[Item<'_>],
    ids: &[i64],
    settings: &Settings,
    now: OffsetDateTime,
) -> Value {
    let mut owners: Vec<&str> = Vec::new();
    let items: Vec<Value> = items
        .iter()
        .map(|item| {
            let certificate = item.certificate;
            let days_left = (certificate.not_after - now).whole_days();
            let (status, level, intermediate, endpoints) = match &item.reason {
                Reason::Expiring { served, level } => {
                    for endpoint in &served.endpoints {
                        if !owners.contains(&endpoint.owner.as_str()) {
                            owners.push(&endpoint.owner);
                        }
                    }
                    let status = match level {
                        Level::Expired => "expired",
                        Level::Late => "renewal_late",
                        _ => "expiring",
                    };
                    let endpoints: Vec<Value> = served.endpoints.iter().map(endpoint).collect();
                    (status, Some(level.key()), served.position > 0, endpoints)
                }
                Reason::Resolved => ("resolved", None, false, Vec::new()),
            };
            json!({
                "sha256": certificate.sha256,
                "names": names(certificate),
                "subject": certificate.subject,
                "serial": certificate.serial,
                "issuer": certificate.issuer,
                "not_after": rfc3339(certificate.not_after),
                "days_left": days_left,
                "status": status,
                "severity": severity(&item.reason, certificate.not_after - now),
                "level": level,
                "intermediate": intermediate,
                "link": settings.link(&certificate.sha256),
                "endpoints": endpoints,
            })
        })
        .collect();
    owners.sort_unstable();
    json!({
        "type": "certfleet.digest",
        "version": 1,
        "delivery": delivery_id(ids),
        "recipient": webhook.recipient(),
        "generated_at": rfc3339(now),
        "subject": subject,
        "owners": owners,
        "items": items,
    })
}

fn endpoint(at: &ServedAt) -> Value {
    json!({
        "address": at.address,
        "sni": at.sni,
        "hostname": at.hostname,
        "app": at.app,
        "env": at.env,
        "owner": at.owner,
        "reachable": !at.unreachable(),
        "probed_at": at.probed_at.map(rfc3339),
        "last_seen": at.seen_at.map(rfc3339),
    })
}

/// `critical`: expired, or at most 3 days left; `warning`: at most 14 days left, or a
/// short-lived certificate's renewal is late; `info`: otherwise, and "no longer served".
fn severity(reason: &Reason<'_>, left: time::Duration) -> &'static str {
    match reason {
        Reason::Resolved => "info",
        Reason::Expiring { level, .. } => match level {
            Level::Expired => "critical",
            _ if left <= time::Duration::days(3) => "critical",
            Level::Late => "warning",
            _ if left <= time::Duration::days(14) => "warning",
            _ => "info",
        },
    }
}

/// A Slack incoming-webhook message: the subject as `text` (the notification's text),
/// a section per certificate (at most 45, then a line saying how many more).
fn slack(subject: &str, items: &[Item<'_>], settings: &Settings, now: OffsetDateTime) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": "certfleet: certificates need attention"},
    })];
    for item in items.iter().take(SLACK_ITEMS) {
        let certificate = item.certificate;
        let link = settings.link(&certificate.sha256);
        let name = mrkdwn(&display_name(certificate));
        let mut text = match &item.reason {
            Reason::Expiring { served, level } => {
                let mut text = format!(
                    "*<{}|{name}>* {} ({})",
                    mrkdwn(&link),
                    time_left(certificate.not_after, now),
                    rfc3339(certificate.not_after)
                );
                if *level == Level::Late {
                    text.push_str(" - renewal looks late");
                }
                if served.position > 0 {
                    text.push_str(" - intermediate, expires before its leaf");
                }
                for at in &served.endpoints {
                    let mut line = format!("\n• `{}`", mrkdwn(&at.address));
                    if let Some(sni) = &at.sni {
                        line.push_str(&format!(" {}", mrkdwn(sni)));
                    }
                    if let Some(app) = &at.app {
                        line.push_str(&format!(" app {}", mrkdwn(app)));
                    }
                    line.push_str(&format!(" owner {}", mrkdwn(&at.owner)));
                    if at.unreachable() {
                        line.push_str(" (not reachable when probed)");
                    }
                    text.push_str(&line);
                }
                text
            }
            Reason::Resolved => format!(
                "~{name}~ is no longer served (renewed, moved or removed): <{}|details>",
                mrkdwn(&link)
            ),
        };
        if text.len() > SLACK_SECTION {
            let mut cut = SLACK_SECTION;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    if items.len() > SLACK_ITEMS {
        let more = items.len() - SLACK_ITEMS;
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("and {more} more in certfleet")}],
        }));
    }
    json!({"text": subject, "blocks": blocks})
}

/// Escapes text for Slack's mrkdwn (`&`, `<`, `>`: the characters that start links and
/// mentions, so a certificate name cannot ping `<!channel>`).
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
