//! `/endpoints?...`: listening sockets with their current certificate and mTLS policy and
//! the names probed under each, a page at a time, filtered like the API.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::{EndpointRecord, SocketRecord};
use maud::{html, Markup};

use super::layout::{days_left_cell, encode, next_page, or_dash, page};
use crate::extract::ApiQuery;
use crate::handlers::endpoints::{self, EndpointQuery};
use crate::handlers::params::present;
use crate::{ApiError, AppState};

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Html<String>, ApiError> {
    let search = query.search()?;
    let page_of = endpoints::socket_page(&state.reads, &search).await?;
    let pairs: Vec<(&str, &str)> = [
        ("address", &query.address),
        ("port", &query.port),
        ("app", &query.app),
        ("env", &query.env),
        ("owner", &query.owner),
        ("mtls", &query.mtls),
        ("finding", &query.finding),
        ("limit", &query.limit),
    ]
    .into_iter()
    .filter_map(|(name, value)| present(value).map(|value| (name, value)))
    .collect();
    let filters: Vec<String> = pairs
        .iter()
        .filter(|(name, _)| *name != "limit")
        .map(|(name, value)| format!("{name} {value}"))
        .collect();
    let title = if filters.is_empty() {
        "Endpoints".to_owned()
    } else {
        format!("Endpoints: {}", filters.join(", "))
    };
    let body = html! {
        (socket_table(&page_of.items))
        (next_page("/endpoints", &pairs, page_of.next_cursor.as_deref()))
    };
    Ok(Html(page(&title, body).into_string()))
}

/// A table of sockets linking to their endpoints and certificates: each socket once, as
/// the counts count it, and under it the other names it is probed under, each with the
/// certificate that name selects.
pub fn socket_table(sockets: &[SocketRecord]) -> Markup {
    html! {
        @if sockets.is_empty() { p id="no-results" { "No endpoints." } }
        @else {
            p class="note" { "One row per listening socket (address:port), as the dashboard counts them; the names it is probed under are listed beneath it with the certificate each selects." }
            table class="endpoints" id="endpoints" {
                tr { th { "endpoint" } th { "host" } th { "app" } th { "env" } th { "zone" } th { "owner" } th { "status" } th { "TLS" } th { "mTLS" } th { "certificate" } th { "left" } th { "findings" } }
                @for socket in sockets {
                    (endpoint_row(&socket.endpoint, false))
                    @for name in &socket.names { (endpoint_row(name, true)) }
                    @if socket.names_total > socket.names.len() as u64 {
                        tr class="name more" {
                            td colspan="11" {
                                a href=(format!("/api/v1/endpoints?address={}&port={}", encode(&socket.endpoint.address), socket.endpoint.port)) {
                                    (socket.names_total - socket.names.len() as u64) " more names"
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One endpoint's row; `nested` for a name under its socket.
fn endpoint_row(endpoint: &EndpointRecord, nested: bool) -> Markup {
    let observation = endpoint.observation.as_ref();
    html! {
        tr class=(if nested { "name" } else { "socket" }) {
            td {
                @if nested {
                    "\u{21b3} " a href=(format!("/endpoints/{}", endpoint.id.0)) { (endpoint.sni.as_deref().unwrap_or("-")) }
                } @else {
                    a href=(format!("/endpoints/{}", endpoint.id.0)) { (endpoint.address) ":" (endpoint.port) } @if let Some(sni) = &endpoint.sni { " @" (sni) }
                }
            }
            td { (or_dash(endpoint.hostname.as_deref())) }
            td { (or_dash(endpoint.tags.app.as_deref())) }
            td { (or_dash(endpoint.tags.env.as_deref())) }
            td { (endpoint.zone) }
            td { (or_dash(endpoint.tags.owner.as_deref())) }
            td { (endpoint.last_status.map(|s| s.as_str()).unwrap_or("not probed yet")) }
            td { (observation.and_then(|o| o.tls.as_ref()).map(|t| t.version.as_str()).unwrap_or("-")) }
            td { (observation.map(|o| o.mtls.label()).unwrap_or("-")) }
            td {
                @if let Some(sha) = observation.and_then(|o| o.leaf_sha256.as_ref()) {
                    a href=(format!("/certificates/{sha}")) { (observation.and_then(|o| o.leaf_subject.clone()).unwrap_or_default()) }
                } @else { "-" }
            }
            td { @if let Some(at) = observation.and_then(|o| o.leaf_not_after) { (days_left_cell(at)) } @else { "-" } }
            td { (observation.map(|o| o.findings.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
        }
    }
}
