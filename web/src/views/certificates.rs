//! `/certificates?...`: certificate lists (lookups and expiry windows), a page at a time.

use axum::extract::State;
use axum::response::Html;
use maud::{html, Markup};

use super::layout::{day, days_left_cell, next_page, page};
use crate::extract::ApiQuery;
use crate::handlers::certificates::{self, CertificateQuery, ListedCertificate, Listing};
use crate::handlers::params::present;
use crate::{ApiError, AppState};

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(mut query): ApiQuery<CertificateQuery>,
) -> Result<Html<String>, ApiError> {
    let no_listing = [
        &query.hostname,
        &query.serial,
        &query.fingerprint,
        &query.issuer,
        &query.expiring_within,
    ]
    .iter()
    .all(|value| present(value).is_none());
    if no_listing {
        query.expiring_within = Some("30d".into());
    }
    let (listing, page_of) = certificates::page(&state.reads, &query).await?;
    let (title, pairs): (String, Vec<(&str, &str)>) = match &listing {
        Listing::Expiring(within) => {
            let window = present(&query.expiring_within).unwrap_or("30d");
            let title = if within.is_zero() {
                "Expired certificates still served".to_owned()
            } else {
                format!("Certificates in use expiring within {window}")
            };
            (title, vec![("expiring_within", window)])
        }
        Listing::Lookup(_) => {
            let (name, value) = [
                ("hostname", &query.hostname),
                ("serial", &query.serial),
                ("fingerprint", &query.fingerprint),
                ("issuer", &query.issuer),
            ]
            .into_iter()
            .find_map(|(name, value)| present(value).map(|value| (name, value)))
            .unwrap_or(("hostname", ""));
            (
                format!("Certificates by {name}: {value}"),
                vec![(name, value)],
            )
        }
    };
    let mut pairs = pairs;
    if let Some(limit) = present(&query.limit) {
        pairs.push(("limit", limit));
    }
    let body = html! {
        (certificate_table(&page_of.items))
        (next_page("/certificates", &pairs, page_of.next_cursor.as_deref()))
    };
    Ok(Html(page(&title, body).into_string()))
}

/// A table of certificates linking to their pages.
pub fn certificate_table(items: &[ListedCertificate]) -> Markup {
    let with_endpoints = items.iter().any(|item| item.endpoints.is_some());
    html! {
        @if items.is_empty() { p id="no-results" { "No certificates." } }
        @else {
            table class="certificates" id="certificates" {
                tr {
                    th { "subject" } th { "names" } th { "issuer" } th { "serial" } th { "expires" } th { "left" }
                    @if with_endpoints { th { "endpoints" } }
                }
                @for item in items {
                    @let cert = &item.certificate;
                    tr {
                        td { a class="certificate" href=(format!("/certificates/{}", cert.sha256)) { (cert.subject) } }
                        td { (cert.sans.join(", ")) }
                        td { (cert.issuer) }
                        td class="mono" { (cert.serial) }
                        td { (day(cert.not_after)) }
                        td { (days_left_cell(cert.not_after)) }
                        @if with_endpoints { td { (item.endpoints.unwrap_or(0)) } }
                    }
                }
            }
        }
    }
}
