//! `/endpoints?...`: endpoints with their current certificate and mTLS policy, a page at
//! a time, filtered like the API.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::EndpointRecord;
use maud::{html, Markup};

use super::layout::{days_left_cell, mtls_label, next_page, or_dash, page};
use crate::extract::ApiQuery;
use crate::handlers::endpoints::{self, EndpointQuery};
use crate::handlers::params::present;
use crate::{ApiError, AppState};

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Html<String>, ApiError> {
    let search = query.search()?;
    let page_of = endpoints::page(&state.store, &search).await?;
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
        (endpoint_table(&page_of.items))
        (next_page("/endpoints", &pairs, page_of.next_cursor.as_deref()))
    };
    Ok(Html(page(&title, body).into_string()))
}

/// A table of endpoints linking to their pages and certificates.
pub fn endpoint_table(endpoints: &[EndpointRecord]) -> Markup {
    html! {
        @if endpoints.is_empty() { p id="no-results" { "No endpoints." } }
        @else {
            table class="endpoints" id="endpoints" {
                tr { th { "endpoint" } th { "host" } th { "app" } th { "env" } th { "owner" } th { "status" } th { "TLS" } th { "mTLS" } th { "certificate" } th { "left" } th { "findings" } }
                @for endpoint in endpoints {
                    @let observation = endpoint.observation.as_ref();
                    tr {
                        td { a href=(format!("/endpoints/{}", endpoint.id.0)) { (endpoint.address) ":" (endpoint.port) } @if let Some(sni) = &endpoint.sni { " @" (sni) } }
                        td { (or_dash(endpoint.hostname.as_deref())) }
                        td { (or_dash(endpoint.app.as_deref())) }
                        td { (or_dash(endpoint.env.as_deref())) }
                        td { (or_dash(endpoint.owner.as_deref())) }
                        td { (endpoint.last_status.map(|s| s.as_str()).unwrap_or("not probed yet")) }
                        td { (observation.and_then(|o| o.tls.as_ref()).map(|t| t.version.as_str()).unwrap_or("-")) }
                        td { (observation.map(|o| mtls_label(o.mtls.requested, o.mtls.required)).unwrap_or("-")) }
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
        }
    }
}
