//! `/probers`: the probers that announced themselves and the queue of every zone.

use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};

use super::layout::page;
use crate::responses::{Prober, Probers, ZoneQueue};
use crate::{ApiError, AppState};

pub async fn index(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let status = Probers::from(&state.store.prober_status().await?);
    let body = html! {
        h2 { "Zones" }
        (zone_table(&status.zones))
        h2 { "Probers" }
        @if status.probers.is_empty() {
            p { "No prober has announced itself yet." }
        } @else {
            (prober_table(&status.probers))
        }
    };
    Ok(Html(page("Probers", body).into_string()))
}

fn zone_table(zones: &[ZoneQueue]) -> Markup {
    html! {
        table {
            thead { tr { th { "zone" } th { "endpoints" } th { "due" } th { "leased" } th { "live probers" } } }
            tbody {
                @for zone in zones {
                    tr {
                        td { (zone.zone) }
                        td { (zone.endpoints) }
                        td { (zone.due) }
                        td { (zone.leased) }
                        td {
                            (zone.live_probers)
                            @if zone.stranded { " (due endpoints, no live prober)" }
                        }
                    }
                }
            }
        }
    }
}

fn prober_table(probers: &[Prober]) -> Markup {
    html! {
        table {
            thead { tr { th { "name" } th { "zones" } th { "version" } th { "live" } th { "last seen" } th { "probes/s" } } }
            tbody {
                @for prober in probers {
                    tr {
                        td { (prober.name) }
                        td { @if prober.zones.is_empty() { "every zone" } @else { (prober.zones.join(", ")) } }
                        td { (prober.version) }
                        td { @if prober.live { "live" } @else { "silent" } }
                        td { (seen(prober.last_seen)) }
                        td { (format!("{:.2}", prober.probes_per_second)) }
                    }
                }
            }
        }
    }
}

/// `2026-12-06T00:10:00Z`: to the second, since liveness is a matter of seconds.
fn seen(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}
