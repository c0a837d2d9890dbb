//! `/`: where things stand, at a glance.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::{MtlsCounts, MtlsGroup, MtlsGrouping, MtlsSummary};
use maud::{html, Markup};

use super::layout::page;
use crate::{ApiError, AppState};

/// Expiring lists are counted up to this many; beyond, the card says "1000+".
const COUNT_CAP: u32 = 1000;

pub async fn get(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let store = &state.store;
    let inventory = store.inventory().await?;
    let within_7 = store
        .expiring_within(time::Duration::days(7), COUNT_CAP)
        .await?
        .len();
    let within_30 = store
        .expiring_within(time::Duration::days(30), COUNT_CAP)
        .await?
        .len();
    let by_app = store.mtls_summary(MtlsGrouping::App).await?;
    let by_env = store.mtls_summary(MtlsGrouping::Env).await?;
    let overall = total(&by_app.groups);
    let capped = |n: usize| {
        if n >= COUNT_CAP as usize {
            format!("{COUNT_CAP}+")
        } else {
            n.to_string()
        }
    };
    let body = html! {
        div class="cards" {
            div class="card" { div class="n" { (inventory.active_endpoints) } "endpoints" }
            div class="card" { div class="n" { (inventory.certificates) } "certificates" }
            a class="card" href="/certificates?expiring_within=7d" {
                div class="n bad" id="expiring-7" { (capped(within_7)) } "expire within 7 days" }
            a class="card" href="/certificates?expiring_within=30d" {
                div class="n warn" id="expiring-30" { (capped(within_30)) } "expire within 30 days" }
        }
        h2 { "Mutual TLS" }
        (share_row("All endpoints", &overall))
        (trend(&by_app))
        h3 { "By app" } (group_table(&by_app.groups, "app"))
        h3 { "By env" } (group_table(&by_env.groups, "env"))
    };
    Ok(Html(page("Dashboard", body).into_string()))
}

fn total(groups: &[MtlsGroup]) -> MtlsCounts {
    groups
        .iter()
        .fold(MtlsCounts::default(), |sum, group| MtlsCounts {
            required: sum.required + group.counts.required,
            optional: sum.optional + group.counts.optional,
            none: sum.none + group.counts.none,
        })
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
        p class="mtls-share" {
            strong { (label) } ": "
            span class="good" { (format!("{required:.0}% required")) } ", "
            span class="warn" { (format!("{optional:.0}% optional")) } ", "
            (format!("{none:.0}% none")) " (" (total) " endpoints)"
        }
        div class="bar" title=(format!("required {required:.1}%, optional {optional:.1}%, none {none:.1}%")) {
            span class="req" style=(format!("width:{required:.2}%")) {}
            span class="opt" style=(format!("width:{optional:.2}%")) {}
            span class="none" style=(format!("width:{none:.2}%")) {}
        }
    }
}

fn group_table(groups: &[MtlsGroup], tag: &str) -> Markup {
    html! {
        table {
            tr { th { (tag) } th { "required" } th { "optional" } th { "none" } th { "required share" } }
            @for group in groups {
                @let key = group.key.clone().unwrap_or_else(|| "(untagged)".into());
                tr {
                    td {
                        @if let Some(value) = &group.key {
                            a href=(format!("/endpoints?{tag}={value}")) { (key) }
                        } @else { (key) }
                    }
                    td { (group.counts.required) } td { (group.counts.optional) } td { (group.counts.none) }
                    td { (format!("{:.0}%", 100.0 * group.counts.required_share())) }
                }
            }
        }
    }
}

/// The last 90 daily snapshots as an SVG line of the required share.
fn trend(summary: &MtlsSummary) -> Markup {
    let days: Vec<_> = summary.trend.iter().rev().take(90).rev().collect();
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
            }
            figcaption { "Share of endpoints requiring mTLS, " (first) " to " (last) }
        }
    }
}
