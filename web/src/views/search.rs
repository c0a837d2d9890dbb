//! `/search?q=`: one box for a hostname, a serial, a fingerprint or an address.

use std::net::IpAddr;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::certificates::{certificate_table, normalize_sha256};
use super::layout::page;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Response, ApiError> {
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.is_empty() || q.len() > 300 {
        let body =
            html! { p { "Type a hostname, a serial, a SHA-256 fingerprint or an IP address." } };
        return Ok(Html(page("Search", body).into_string()).into_response());
    }
    if let Ok(address) = q.parse::<IpAddr>() {
        return Ok(Redirect::to(&format!("/endpoints?address={address}")).into_response());
    }
    if let Ok(sha256) = normalize_sha256(&q) {
        if state.store.certificate(&sha256).await.is_ok() {
            return Ok(Redirect::to(&format!("/certificates/{sha256}")).into_response());
        }
    }
    // A serial if it is hex with separators people paste; a hostname otherwise. Both are
    // tried when the text could be either (e.g. "deadbeef").
    let looks_like_serial = q
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | ' ' | '-'))
        || q.to_ascii_lowercase().starts_with("0x");
    let mut records = Vec::new();
    if looks_like_serial {
        if let Ok(found) = state.store.certificates_by_serial(&q, 100).await {
            records.extend(found);
        }
    }
    if records.is_empty() && !q.contains(' ') {
        if let Ok(found) = state.store.certificates_by_hostname(&q, 100).await {
            records.extend(found);
        }
    }
    let title = format!("Results for {q}");
    let body = html! { p { (records.len()) " certificate(s)" } (certificate_table(&records)) };
    Ok(Html(page(&title, body).into_string()).into_response())
}
