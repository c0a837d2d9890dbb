//! One digest email per owner: the subject names the most urgent item; a plain-text and
//! an HTML part list each certificate with its names, serial, issuer, time left, where
//! it is served and a link to its page.

use certfleet_store::CertificateRecord;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::plan::{Served, ServedAt};
use crate::policy::Level;
use crate::settings::Settings;

/// One certificate in a digest.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// The certificate.
    pub certificate: &'a CertificateRecord,
    /// Why it is in the digest.
    pub reason: Reason<'a>,
}

/// Why a certificate is in a digest.
#[derive(Debug, Clone)]
pub enum Reason<'a> {
    /// It expires (or expired) and the owner's endpoints serve it.
    Expiring {
        /// Where and how.
        served: &'a Served,
        /// The most urgent level claimed.
        level: Level,
    },
    /// The owner's endpoints no longer serve it.
    Resolved,
}

/// A rendered digest, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The owner.
    pub to: String,
    /// Names the most urgent item.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Outbox rows this digest delivers.
    pub ids: Vec<i64>,
    /// For a webhook: the body to post (JSON); `None` for mail.
    pub body: Option<String>,
    /// SHA-256 of every certificate in it, most urgent first.
    pub certificates: Vec<String>,
}

/// Which part of an owner's digest a message is: a digest of more certificates than one
/// message may list goes out as several, each its own delivery of its own rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// From 1.
    pub number: usize,
    /// Parts in all.
    pub of: usize,
    /// Certificates in all the parts.
    pub certificates: usize,
}

impl Part {
    /// `" [part 2 of 5]"`; empty for a whole digest.
    fn label(&self) -> String {
        match self.of {
            0 | 1 => String::new(),
            of => format!(" [part {} of {of}]", self.number),
        }
    }
}

/// Renders one owner's digest, or one part of it; items are put most urgent first.
/// `None` without items.
pub fn render(
    owner: &str,
    mut items: Vec<Item<'_>>,
    part: Part,
    settings: &Settings,
    now: OffsetDateTime,
) -> Option<Digest> {
    sort(&mut items);
    let first = items.first()?;
    let expiring = items
        .iter()
        .filter(|i| !matches!(i.reason, Reason::Resolved))
        .count();
    let more = match items.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more)".into(),
        n => format!(" (and {n} more)"),
    };
    let label = part.label();
    let subject = match &first.reason {
        Reason::Expiring { level, .. } => {
            let name = display_name(first.certificate);
            let left = time_left(first.certificate.not_after, now);
            match level {
                Level::Expired => format!("[certfleet]{label} EXPIRED: {name} {left}{more}"),
                Level::Late => format!("[certfleet]{label} renewal late: {name} {left}{more}"),
                _ => format!("[certfleet]{label} {name} {left}{more}"),
            }
        }
        Reason::Resolved => {
            let name = display_name(first.certificate);
            format!("[certfleet]{label} resolved: {name} is no longer served{more}")
        }
    };
    let intro = format!("{expiring} certificate(s) served by your endpoints need attention.");
    let intro = match part.of {
        0 | 1 => intro,
        of => format!(
            "Part {} of {of} of this digest, which lists {} certificates in all: {intro}",
            part.number, part.certificates
        ),
    };
    let mut text = format!("certfleet: {intro}\n\n");
    let mut html = String::from(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\n<h2>certfleet</h2>\n",
    );
    html.push_str(&format!("<p>{}</p>\n", escape(&intro)));
    let mut told_resolved = false;
    for (index, item) in items.iter().enumerate() {
        let certificate = item.certificate;
        let link = settings.link(&certificate.sha256);
        match &item.reason {
            Reason::Expiring { served, level } => {
                let facts = facts(certificate, served, *level, now);
                text.push_str(&format!("{}. {}\n", index + 1, display_name(certificate)));
                for (label, value) in &facts {
                    // Continuation lines stay under the value's first line.
                    let value = value.replace('\n', "\n              ");
                    text.push_str(&format!("   {label:<10} {value}\n"));
                }
                text.push_str(&format!(
                    "   SHA-256:   {}\n   Details:   {link}\n",
                    certificate.sha256
                ));
                let checks = check_again(served, settings, now);
                for (socket, url) in &checks {
                    text.push_str(&format!("   Renewed?   check again {socket}: {url}\n"));
                }
                text.push('\n');
                html.push_str(&format!(
                    "<h3>{}</h3>\n<table cellpadding=\"2\">\n",
                    escape(&display_name(certificate))
                ));
                for (label, value) in &facts {
                    html.push_str(&format!(
                        "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                        escape(label),
                        escape(value).replace('\n', "<br>")
                    ));
                }
                html.push_str(&format!(
                    "<tr><th align=\"left\">SHA-256</th><td><code>{}</code></td></tr>\n\
                     </table>\n<p><a href=\"{}\">Details</a></p>\n",
                    certificate.sha256,
                    escape(&link)
                ));
                if !checks.is_empty() {
                    let links: Vec<String> = checks
                        .iter()
                        .map(|(socket, url)| {
                            format!("<a href=\"{}\">{}</a>", escape(url), escape(socket))
                        })
                        .collect();
                    html.push_str(&format!(
                        "<p>Renewed? Check again: {}</p>\n",
                        links.join(", ")
                    ));
                }
            }
            Reason::Resolved => {
                if !told_resolved {
                    told_resolved = true;
                    text.push_str(
                        "No longer served by your endpoints (renewed, moved or removed):\n",
                    );
                    html.push_str("<h3>No longer served by your endpoints (renewed, moved or removed)</h3>\n<ul>\n");
                }
                let line = format!(
                    "{} (serial {}, expires {})",
                    display_name(certificate),
                    certificate.serial,
                    date(certificate.not_after)
                );
                text.push_str(&format!(
                    "   - {line}\n     SHA-256: {}\n",
                    certificate.sha256
                ));
                html.push_str(&format!(
                    "<li>{} <a href=\"{}\"><code>{}</code></a></li>\n",
                    escape(&line),
                    escape(&link),
                    certificate.sha256
                ));
            }
        }
    }
    if told_resolved {
        html.push_str("</ul>\n");
    }
    text.push_str(
        "\n-- \ncertfleet expiry notifications. One digest per run; each threshold is sent once.\n",
    );
    html.push_str("<p style=\"color:#666\">certfleet expiry notifications. One digest per run; each threshold is sent once.</p>\n</body></html>\n");
    Some(Digest {
        to: owner.to_owned(),
        subject,
        text,
        html,
        ids: Vec::new(),
        body: None,
        certificates: items.iter().map(|i| i.certificate.sha256.clone()).collect(),
    })
}

/// Most urgent first: what is still served before what is resolved, then by expiry.
fn sort(items: &mut [Item<'_>]) {
    items.sort_by_key(urgency);
}

/// The order of items in a digest, most urgent first: what is still served before what
/// is resolved, then by expiry.
pub(crate) fn urgency(item: &Item<'_>) -> (bool, OffsetDateTime, String) {
    let resolved = matches!(item.reason, Reason::Resolved);
    (
        resolved,
        item.certificate.not_after,
        item.certificate.sha256.clone(),
    )
}

/// Labelled facts of one expiring certificate.
fn facts(
    certificate: &CertificateRecord,
    served: &Served,
    level: Level,
    now: OffsetDateTime,
) -> Vec<(&'static str, String)> {
    let mut facts = vec![
        (
            "Expires:",
            format!(
                "{} ({})",
                date(certificate.not_after),
                time_left(certificate.not_after, now)
            ),
        ),
        ("Names:", names(certificate).join(", ")),
        ("Subject:", certificate.subject.clone()),
        ("Serial:", certificate.serial.clone()),
        ("Issuer:", certificate.issuer.clone()),
    ];
    if served.position > 0 {
        let note =
            "chain certificate (intermediate) that expires before the leaf it is served with";
        facts.push(("Role:", note.into()));
    }
    if level == Level::Late {
        let note = "short-lived certificate with under a third of its lifetime left: \
                    its automated renewal looks late";
        facts.push(("Renewal:", note.into()));
    }
    // A failed confirming probe: say when the certificate was last seen, not that it is
    // served.
    let label = if served.endpoints.iter().all(ServedAt::unreachable) {
        "Last seen at:"
    } else {
        "Served at:"
    };
    facts.push((label, places(&served.endpoints).join("\n")));
    facts
}

/// A signed "renewed? check again" link per socket serving the certificate (the first
/// endpoint seen at each), when links are configured: it asks for that endpoint to be
/// probed now, so an owner who renewed sees the digest's claim checked again.
fn check_again(served: &Served, settings: &Settings, now: OffsetDateTime) -> Vec<(String, String)> {
    let mut checks: Vec<(String, String)> = Vec::new();
    for endpoint in &served.endpoints {
        if checks.iter().any(|(socket, _)| *socket == endpoint.address) {
            continue;
        }
        let Some(url) = settings.probe_link(endpoint.endpoint_id.0, now) else {
            return Vec::new();
        };
        checks.push((endpoint.address.clone(), url));
    }
    checks
}

/// One line per socket (address and port), in the order first seen, with the names it
/// serves the certificate under: a socket probed under three names is one place.
fn places(endpoints: &[ServedAt]) -> Vec<String> {
    let mut sockets: Vec<(String, &ServedAt, Vec<&str>)> = Vec::new();
    for endpoint in endpoints {
        let socket = endpoint.address.clone();
        let index = match sockets.iter().position(|(known, _, _)| *known == socket) {
            Some(index) => index,
            None => {
                sockets.push((socket, endpoint, Vec::new()));
                sockets.len() - 1
            }
        };
        if let Some(sni) = endpoint.sni.as_deref() {
            if !sockets[index].2.contains(&sni) {
                sockets[index].2.push(sni);
            }
        }
    }
    sockets
        .into_iter()
        .map(|(socket, first, names)| {
            let place = place(&socket, first);
            if names.is_empty() {
                place
            } else {
                format!("{place}\n  names: {}", names.join(", "))
            }
        })
        .collect()
}

fn place(socket: &str, endpoint: &ServedAt) -> String {
    let mut details = Vec::new();
    if let Some(host) = &endpoint.hostname {
        details.push(format!("host {host}"));
    }
    if let Some(app) = &endpoint.app {
        details.push(format!("app {app}"));
    }
    if let Some(env) = &endpoint.env {
        details.push(format!("env {env}"));
    }
    let mut place = if details.is_empty() {
        socket.to_owned()
    } else {
        format!("{socket} ({})", details.join(", "))
    };
    if endpoint.unreachable() {
        let status = endpoint.probe_status.as_deref().unwrap_or("failed");
        let probed = endpoint
            .probed_at
            .map_or_else(|| "recently".to_owned(), date);
        place.push_str(&format!(
            "; not reachable when probed at {probed} ({status})"
        ));
        if let Some(seen) = endpoint.seen_at {
            place.push_str(&format!(", last seen serving it {}", date(seen)));
        }
    }
    place
}

/// SANs, or the subject's CN when there are none.
pub(crate) fn names(certificate: &CertificateRecord) -> Vec<String> {
    if !certificate.sans.is_empty() {
        return certificate.sans.clone();
    }
    vec![common_name(&certificate.subject)
        .unwrap_or(&certificate.subject)
        .to_owned()]
}

/// The name a reader knows the certificate by: its first SAN, else its CN.
pub fn display_name(certificate: &CertificateRecord) -> String {
    names(certificate).into_iter().next().unwrap_or_default()
}

fn common_name(subject: &str) -> Option<&str> {
    subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))
}

fn date(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_else(|_| at.to_string())
}

/// `expires in 5 days`, `expires in 3 hours`, `expired 2 days ago`.
pub fn time_left(not_after: OffsetDateTime, now: OffsetDateTime) -> String {
    let left = not_after - now;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if left.is_negative() || left.is_zero() {
        let ago = -left;
        return match ago.whole_days() {
            0 => format!("expired {} ago", plural(ago.whole_hours(), "hour")),
            days => format!("expired {} ago", plural(days, "day")),
        };
    }
    match left.whole_days() {
        0 => format!("expires in {}", plural(left.whole_hours(), "hour")),
        days => format!("expires in {}", plural(days, "day")),
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    #[test]
    fn time_left_reads_naturally() {
        let now = datetime!(2026-11-27 10:00 UTC);
        assert_eq!(
            time_left(now + Duration::days(5) + Duration::hours(3), now),
            "expires in 5 days"
        );
        assert_eq!(time_left(now + Duration::days(1), now), "expires in 1 day");
        assert_eq!(
            time_left(now + Duration::hours(3), now),
            "expires in 3 hours"
        );
        assert_eq!(
            time_left(now - Duration::days(2), now),
            "expired 2 days ago"
        );
        assert_eq!(time_left(now, now), "expired 0 hours ago");
    }

    #[test]
    fn a_socket_is_one_place_with_its_names_under_it() {
        let at = |sni: Option<&str>, port: u16| ServedAt {
            endpoint_id: certfleet_store::EndpointId(1),
            address: format!("127.0.0.1:{port}"),
            sni: sni.map(str::to_owned),
            hostname: Some("web-1".into()),
            app: Some("web".into()),
            env: None,
            owner: "ops@example.com".into(),
            probed_at: None,
            probe_status: Some("ok".into()),
            seen_at: None,
        };
        let endpoints = [
            at(None, 41185),
            at(Some("www.demo.test"), 41185),
            at(Some("demo.test"), 41185),
            at(None, 8443),
        ];
        assert_eq!(
            places(&endpoints),
            vec![
                "127.0.0.1:41185 (host web-1, app web)\n  names: www.demo.test, demo.test"
                    .to_owned(),
                "127.0.0.1:8443 (host web-1, app web)".to_owned(),
            ]
        );
    }

    #[test]
    fn an_unreachable_endpoint_says_when_the_certificate_was_last_seen() {
        let at = ServedAt {
            endpoint_id: certfleet_store::EndpointId(1),
            address: "10.0.0.7:443".into(),
            sni: None,
            hostname: None,
            app: None,
            env: None,
            owner: "ops@example.com".into(),
            probed_at: Some(time::macros::datetime!(2026-12-04 10:00 UTC)),
            probe_status: Some("timeout".into()),
            seen_at: Some(time::macros::datetime!(2026-12-03 09:30 UTC)),
        };
        assert_eq!(
            places(&[at]),
            vec![
                "10.0.0.7:443; not reachable when probed at 2026-12-04 10:00 UTC (timeout), \
                  last seen serving it 2026-12-03 09:30 UTC"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_common_name_is_found_in_a_subject() {
        assert_eq!(
            common_name("O=Example, CN=api.internal"),
            Some("api.internal")
        );
        assert_eq!(common_name("O=Example"), None);
    }
}
