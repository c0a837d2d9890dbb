//! `/search?q=`: one box for a hostname, a serial (any spelling), a SHA-256 or SHA-1
//! fingerprint, an IP address or an issuer DN.

use std::net::IpAddr;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use certfleet_store::{normalize_fingerprint, CertificateLookup, CertificateSearch};
use maud::html;
use serde::Deserialize;

use super::certificates::certificate_table;
use super::layout::{encode, page};
use crate::extract::ApiQuery;
use crate::handlers::certificates::ListedCertificate;
use crate::handlers::params::DEFAULT_LIMIT;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
}

/// What a search box text is tried as, in order.
fn readings(q: &str) -> Vec<CertificateLookup> {
    let mut lookups = Vec::new();
    if q.contains('=') {
        lookups.push(CertificateLookup::Issuer(q.to_owned()));
        return lookups;
    }
    if normalize_fingerprint(q).is_ok() {
        lookups.push(CertificateLookup::Fingerprint(q.to_owned()));
    }
    let serial_like = q
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | ' ' | '-'))
        || q.to_ascii_lowercase().starts_with("0x");
    if serial_like {
        lookups.push(CertificateLookup::Serial(q.to_owned()));
    }
    if !q.contains(' ') && !q.contains(':') {
        lookups.push(CertificateLookup::Hostname(q.to_owned()));
    }
    lookups
}

pub async fn get(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Response, ApiError> {
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.is_empty() || q.len() > 1024 {
        let body = html! {
            p { "Type a hostname, a serial, a SHA-256 or SHA-1 fingerprint, an IP address or an issuer (CN=...)." }
        };
        return Ok(Html(page("Search", body).into_string()).into_response());
    }
    if let Ok(address) = q.parse::<IpAddr>() {
        return Ok(Redirect::to(&format!(
            "/endpoints?address={}",
            encode(&address.to_string())
        ))
        .into_response());
    }
    let mut found = Vec::new();
    let mut how = "";
    for lookup in readings(&q) {
        let kind = match &lookup {
            CertificateLookup::Hostname(_) => "hostname",
            CertificateLookup::Serial(_) => "serial",
            CertificateLookup::Fingerprint(_) => "fingerprint",
            CertificateLookup::Issuer(_) => "issuer",
        };
        let search = CertificateSearch {
            lookup,
            after: None,
            limit: DEFAULT_LIMIT,
        };
        // A reading that does not parse (e.g. not a host name) is simply not a match.
        match state.reads.search_certificates(&search).await {
            Ok(records) if !records.is_empty() => {
                found = records;
                how = kind;
                break;
            }
            Ok(_) => {}
            Err(certfleet_store::Error::Invalid { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    // A serial or fingerprint that names one certificate opens it.
    if found.len() == 1 && matches!(how, "serial" | "fingerprint") {
        return Ok(Redirect::to(&format!("/certificates/{}", found[0].sha256)).into_response());
    }
    let items: Vec<ListedCertificate> = found
        .into_iter()
        .map(|certificate| ListedCertificate {
            certificate,
            endpoints: None,
        })
        .collect();
    let title = format!("Results for {q}");
    let more = items.len() >= DEFAULT_LIMIT as usize;
    let body = html! {
        p id="result-count" {
            (items.len()) @if more { "+" } " certificate(s)"
            @if !how.is_empty() { " by " (how) }
        }
        (certificate_table(&items))
        @if more {
            p { a href=(format!("/certificates?{how}={}", encode(&q))) { "All results" } }
        }
    };
    Ok(Html(page(&title, body).into_string()).into_response())
}
