//! `/`: where things stand, at a glance. Everything comes from the cached fleet overview
//! (at most `WebOptions::overview_ttl` old), so the page costs no query of its own.

use axum::extract::State;
use axum::response::Html;
use certfleet_model::Finding;
use certfleet_store::{FleetOverview, LatencyHistogram, MtlsCounts, MtlsDay, MtlsGroup, ZoneQueue};
use maud::{html, Markup};

use super::layout::{encode, page};
use crate::state::Web;
use crate::ApiError;

/// Groups shown per tag on the dashboard; `/mtls` lists them all.
const TOP_GROUPS: usize = 15;

/// The findings the dashboard puts first, with their plain names.
const WORST: [(Finding, &str); 4] = [
    (Finding::WeakKey, "Weak keys (RSA < 2048, EC < 256)"),
    (Finding::Sha1Signature, "SHA-1 signatures"),
    (
        Finding::LegacyProtocol,
        "Legacy protocols only (below TLS 1.2)",
    ),
    (Finding::Untrusted, "Untrusted chains"),
];

pub(crate) async fn get(State(web): State<Web>) -> Result<Html<String>, ApiError> {
    let overview = web.overview.overview(&web.app.reads).await?;
    let o = overview.as_ref();
    let certs = &o.certificates_by_days_left;
    let body = html! {
        div class="cards" {
            a class="card" href="/endpoints" title="Each listening socket (address, port) counts once, however many names it is probed under; the figures below count sockets too." {
                div class="n" id="sockets" { (o.sockets) } "sockets"
                div class="sub" id="endpoints" { (o.active_endpoints) " endpoints with their names" } }
            div class="card" { div class="n" id="certificates" { (o.certificates) } "certificates" }
            a class="card" href="/certificates?expiring_within=0d" {
                div class="n bad" id="expired" { (certs.expired) } "expired, still served" }
            a class="card" href="/certificates?expiring_within=7d" {
                div class="n bad" id="expiring-7" { (certs.expired + certs.within_7_days) } "expire within 7 days" }
            a class="card" href="/certificates?expiring_within=30d" {
                div class="n warn" id="expiring-30" { (certs.expired + certs.within_7_days + certs.within_30_days) } "expire within 30 days" }
        }
        h2 { "Worst findings" }
        (findings(o))
        h2 { "Mutual TLS" }
        (share_row("All sockets", &o.mtls))
        (trend(&o.mtls_trend))
        h3 { "By app" } (group_table(&o.mtls_by_app, "app"))
        h3 { "By env" } (group_table(&o.mtls_by_env, "env"))
        h2 { "Probing" }
        (probing(o))
    };
    Ok(Html(page("Dashboard", body).into_string()))
}

fn findings(o: &FleetOverview) -> Markup {
    let expired_endpoints = o.endpoints_by_days_left.expired;
    html! {
        table id="findings" {
            tr { th { "finding" } th { "sockets" } }
            tr class="finding" {
                td { a href="/certificates?expiring_within=0d" { "Expired certificates still served" } }
                td class=(if expired_endpoints > 0 { "bad" } else { "" }) { (expired_endpoints) }
            }
            @for (finding, label) in WORST {
                @let count = o.finding(finding);
                tr class="finding" {
                    td { a href=(format!("/endpoints?finding={}", finding.as_str())) { (label) } }
                    td class=(if count > 0 { "bad" } else { "" }) id=(format!("finding-{}", finding.as_str())) { (count) }
                }
            }
        }
        p class="other-findings" { "Other findings: "
            @for (index, count) in o.findings.iter().filter(|c| c.count > 0 && !WORST.iter().any(|(f, _)| f.as_str() == c.name)).enumerate() {
                @if index > 0 { ", " }
                a href=(format!("/endpoints?finding={}", count.name)) { (count.name.replace('_', " ")) } " " (count.count)
            }
        }
    }
}

fn probing(o: &FleetOverview) -> Markup {
    html! {
        p {
            "Queue: " (o.queue.due) " due, " (o.queue.overdue) " overdue by more than an hour, "
            (o.queue.leased) " being probed, " (o.queue.failing) " failing; "
            (format!("{:.1}", o.queue.probed_last_5m as f64 / 300.0)) " probes/s over the last 5 minutes. "
            a href="/notifications/failed" id="failed-notifications" { (o.failed_notifications) " failed notification(s)" } "."
        }
        p { "Last probe: "
            @for (index, status) in o.probe_status.iter().filter(|s| s.count > 0).enumerate() {
                @if index > 0 { ", " }
                (status.name.replace('_', " ")) " " (status.count)
            }
        }
        (discovery(&o.discovery.last_7_days))
        (stranded_zones(&o.zones))
    }
}

/// A line per zone whose due endpoints no live prober serves: its queue only grows until
/// a prober of the zone is started (or comes back).
fn stranded_zones(zones: &[ZoneQueue]) -> Markup {
    html! {
        @for zone in zones.iter().filter(|zone| zone.stranded()) {
            p class="bad stranded-zone" id=(format!("zone-{}", zone.zone)) {
                "zone " (zone.zone) ": " (zone.due) " due, no live prober ("
                a href="/probers" { "probers" } ")"
            }
        }
    }
}

/// How soon rotations were seen: the line the discovery latency histogram stands for.
fn discovery(recent: &LatencyHistogram) -> Markup {
    let within = |share: f64| {
        recent
            .bound_for(share)
            .map_or_else(|| "over a week".to_owned(), duration)
    };
    html! {
        p id="discovery-latency" {
            "Rotations seen in the last 7 days: " (recent.count)
            @if recent.count > 0 {
                "; half seen within " (within(0.5)) ", 90 % within " (within(0.9))
                " of the last probe that saw the old certificate"
            }
            "."
        }
    }
}

/// A bucket bound in seconds, in the unit people say it in.
fn duration(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(count: u64, unit: &str) -> String {
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * part as f64 / total as f64
    }
}

fn share_row(label: &str, counts: &MtlsCounts) -> Markup {
    let total = counts.total();
    let (required, optional, none) = (
        percent(counts.required, total),
        percent(counts.optional, total),
        percent(counts.none, total),
    );
    html! {
        p class="mtls-share" id="mtls-share" {
            strong { (label) } ": "
            a class="good" href="/endpoints?mtls=required" { (format!("{required:.0}% required")) } ", "
            a class="warn" href="/endpoints?mtls=optional" { (format!("{optional:.0}% optional")) } ", "
            a href="/endpoints?mtls=none" { (format!("{none:.0}% none")) } " (" (total) " sockets)"
        }
        div class="bar" title=(format!("required {required:.1}%, optional {optional:.1}%, none {none:.1}%")) {
            span class="req" style=(format!("width:{required:.2}%")) {}
            span class="opt" style=(format!("width:{optional:.2}%")) {}
            span class="none" style=(format!("width:{none:.2}%")) {}
        }
    }
}

/// The groups with the most endpoints, and a link to all of them.
pub fn group_table(groups: &[MtlsGroup], tag: &str) -> Markup {
    let mut top: Vec<&MtlsGroup> = groups.iter().collect();
    top.sort_by_key(|group| std::cmp::Reverse(group.counts.total()));
    let shown = top.len().min(TOP_GROUPS);
    html! {
        (groups_rows(&top[..shown], tag))
        @if groups.len() > shown {
            p { a href=(format!("/mtls?by={tag}")) { "All " (groups.len()) " " (tag) " values" } }
        }
    }
}

/// A table of groups with their shares.
pub fn groups_rows(groups: &[&MtlsGroup], tag: &str) -> Markup {
    html! {
        table class=(format!("mtls-{tag}")) {
            tr { th { (tag) } th { "required" } th { "optional" } th { "none" } th { "required share" } }
            @for group in groups {
                tr {
                    td {
                        @if let Some(value) = &group.key {
                            a href=(format!("/endpoints?{tag}={}", encode(value))) { (value) }
                        } @else { "(untagged)" }
                    }
                    td { (group.counts.required) } td { (group.counts.optional) } td { (group.counts.none) }
                    td { (format!("{:.0}%", 100.0 * group.counts.required_share())) }
                }
            }
        }
    }
}

/// The last 90 daily snapshots as an SVG line of the required share.
fn trend(days: &[MtlsDay]) -> Markup {
    if days.is_empty() {
        return html! { p { "No daily snapshots yet." } };
    }
    let (width, height) = (600.0, 120.0);
    let step = if days.len() > 1 {
        width / (days.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(index, day)| {
            let y = height - height * day.counts.required_share();
            format!("{:.1},{:.1}", index as f64 * step, y)
        })
        .collect();
    let first = days.first().map(|d| d.day.to_string()).unwrap_or_default();
    let last = days.last().map(|d| d.day.to_string()).unwrap_or_default();
    html! {
        figure {
            svg width="620" height="140" viewBox="-10 -10 620 140" role="img"
                aria-label="share of endpoints requiring mTLS, daily" {
                rect x="0" y="0" width="600" height="120" fill="#fff" stroke="#d8dce2" {}
                polyline points=(points.join(" ")) fill="none" stroke="#1b6e3a" stroke-width="2" {}
                // A single day is a point, not a line.
                @if points.len() == 1 {
                    @let (x, y) = points[0].split_once(',').unwrap_or(("0", "0"));
                    circle cx=(x) cy=(y) r="4" fill="#1b6e3a" {}
                }
            }
            figcaption { "Share of sockets requiring mTLS, " (first) " to " (last) }
        }
    }
}
