//! `/endpoints/{id}`: one endpoint, what it serves now and what it served before.

use axum::extract::{Path, State};
use axum::response::Html;
use maud::html;

use certfleet_store::EndpointSearch;

use super::endpoints::socket_table;
use super::layout::{day, days_left_cell, encode, or_dash, page};
use crate::handlers::endpoints::parse_id;
use crate::{ApiError, AppState};

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let detail = state.reads.endpoint(parse_id(&id)?).await?;
    let e = &detail.endpoint;
    // The socket this endpoint is one name of, with its other names.
    let socket = match e.address.parse() {
        Ok(address) if e.retired_at.is_none() => {
            let search = EndpointSearch {
                address: Some(address),
                port: Some(e.port),
                limit: 1,
                ..EndpointSearch::default()
            };
            state.reads.search_sockets(&search).await?.pop()
        }
        _ => None,
    };
    let title = format!("Endpoint {}:{}", e.address, e.port);
    let body = html! {
        table class="fields" {
            tr { th { "Address" } td { (e.address) ":" (e.port) @if let Some(sni) = &e.sni { " (SNI " (sni) ")" } } }
            tr { th { "Host" } td { (or_dash(e.hostname.as_deref())) } }
            tr { th { "Process / container" } td { (or_dash(e.process.as_deref())) " / " (or_dash(e.container.as_deref())) } }
            tr { th { "App / env" } td { (or_dash(e.tags.app.as_deref())) " / " (or_dash(e.tags.env.as_deref())) } }
            tr { th { "Owner" } td { @if let Some(owner) = &e.tags.owner { a href=(format!("/owners/{}", encode(owner))) { (owner) } } @else { "-" } } }
            tr { th { "Reported" } td { (day(e.seen.first_seen)) " to " (day(e.seen.last_seen)) @if let Some(at) = e.retired_at { " (retired " (day(at)) ")" } } }
            tr { th { "Last probe" } td { (e.last_status.map(|s| s.as_str()).unwrap_or("not probed yet")) @if let Some(error) = &e.last_error { ": " (error) } } }
            tr { th { "Next probe" } td { (day(e.next_probe_at)) " (" (e.failures) " failure(s) in a row)" } }
            tr { th { "Zone" } td { a href="/probers" { (e.zone) } " (probed only by the probers serving it)" } }
        }
        @if e.retired_at.is_none() {
            (super::probe::button_form(e.id))
        }
        @if let Some(socket) = socket.filter(|s| s.names_total > 0) {
            h2 { "The socket's names" }
            p { "The listening socket " (e.address) ":" (e.port) " is probed without a name and under each of these names; it counts once." }
            (socket_table(std::slice::from_ref(&socket)))
        }
        @if !detail.conflicts.is_empty() {
            h2 { "Conflicting claims" }
            p { "Other hosts reported this address and port while its host still did. Their claims are kept, not applied, until that host stops reporting it or an operator settles it (" code { "certfleet settle " (e.id.0) " --to HOST | --dismiss" } ")." }
            table id="conflicts" {
                tr { th { "host" } th { "machine id" } th { "agent" } th { "first claimed" } th { "last claimed" } }
                @for c in &detail.conflicts {
                    tr { td { (c.hostname) } td { (c.machine_id) } td { (c.agent) } td { (day(c.seen.first_seen)) } td { (day(c.seen.last_seen)) } }
                }
            }
        }
        h2 { "Served over time" }
        table id="history" {
            tr { th { "certificate" } th { "left" } th { "TLS" } th { "mTLS" } th { "findings" } th { "first seen" } th { "last seen" } }
            @for o in &detail.history {
                tr {
                    td { @if let Some(sha) = &o.leaf_sha256 { a href=(format!("/certificates/{sha}")) { (o.leaf_subject.clone().unwrap_or_else(|| sha.clone())) } } @else { "-" } }
                    td { @if let Some(at) = o.leaf_not_after { (days_left_cell(at)) } @else { "-" } }
                    td { (o.tls.as_ref().map(|t| t.version.as_str()).unwrap_or("-")) }
                    td { (o.mtls.label()) }
                    td { (o.findings.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { (day(o.seen.first_seen)) } td { (day(o.seen.last_seen)) }
                }
            }
        }
    };
    Ok(Html(page(&title, body).into_string()))
}
