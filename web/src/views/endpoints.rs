//! `/endpoints`: endpoints with their current certificate and mTLS policy.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::{EndpointFilter, EndpointId};
use maud::html;
use serde::Deserialize;

use super::layout::{days_left_cell, page};
use crate::extract::ApiQuery;
use crate::handlers::params::parse_limit;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    address: Option<String>,
    port: Option<u16>,
    app: Option<String>,
    env: Option<String>,
    limit: Option<String>,
    cursor: Option<i64>,
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Html<String>, ApiError> {
    let address = match query.address.as_deref().filter(|a| !a.is_empty()) {
        Some(raw) => Some(raw.parse().map_err(|_| {
            ApiError::bad_request("address must be an IP address", Some("address".into()))
        })?),
        None => None,
    };
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = EndpointFilter {
        address,
        port: query.port,
        app: query.app.clone(),
        env: query.env.clone(),
        include_retired: false,
        after: query.cursor.map(EndpointId),
        limit,
    };
    let endpoints = state.store.endpoints(&filter).await?;
    let next = endpoints
        .last()
        .filter(|_| endpoints.len() == limit as usize)
        .map(|e| e.id.0);
    let body = html! {
        table class="endpoints" {
            tr { th { "endpoint" } th { "host" } th { "app" } th { "env" } th { "status" } th { "TLS" } th { "mTLS" } th { "certificate" } th { "left" } th { "findings" } }
            @for endpoint in &endpoints {
                @let observation = endpoint.observation.as_ref();
                tr {
                    td { (endpoint.address) ":" (endpoint.port) @if let Some(sni) = &endpoint.sni { " @" (sni) } }
                    td { (endpoint.hostname.as_deref().unwrap_or("-")) }
                    td { (endpoint.app.as_deref().unwrap_or("-")) }
                    td { (endpoint.env.as_deref().unwrap_or("-")) }
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
        @if let Some(cursor) = next {
            p { a href=(format!("/endpoints?cursor={cursor}&limit={limit}")) { "Next page" } }
        }
    };
    Ok(Html(page("Endpoints", body).into_string()))
}

fn mtls_label(requested: bool, required: Option<bool>) -> &'static str {
    match (requested, required) {
        (false, _) => "none",
        (true, Some(true)) => "required",
        (true, Some(false)) => "optional",
        (true, None) => "requested",
    }
}
