//! Certificate pages: one certificate, its PEM, and lists (expiring, search results).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use certfleet_store::CertificateRecord;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{day, days_left_cell, page};
use crate::extract::ApiQuery;
use crate::handlers::params::{parse_limit, parse_window};
use crate::{ApiError, AppState};

pub async fn show(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(sha256) = sha256.strip_suffix(".pem") {
        let detail = state.store.certificate(&normalize_sha256(sha256)?).await?;
        let pem = detail.pem.ok_or(ApiError::NotFound)?;
        let disposition = format!("attachment; filename=\"{sha256}.pem\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            pem,
        )
            .into_response());
    }
    let detail = state.store.certificate(&normalize_sha256(&sha256)?).await?;
    let cert = &detail.certificate;
    let body = html! {
        table class="fields" {
            tr { th { "Subject" } td { (cert.subject) } }
            tr { th { "Issuer" } td { (cert.issuer) } }
            tr { th { "Serial" } td class="mono" id="serial" { (cert.serial) } }
            tr { th { "SHA-256" } td class="mono" { (cert.sha256) } }
            tr { th { "Names" } td { (cert.sans.join(", ")) } }
            tr { th { "Valid" } td { (day(cert.not_before)) " to " (day(cert.not_after)) " (" (days_left_cell(cert.not_after)) ")" } }
            tr { th { "Key" } td { (cert.key.kind) " " (cert.key.bits) } }
            tr { th { "Signature" } td { (cert.signature_algorithm) } }
            tr { th { "CA / self-signed" } td { (cert.is_ca) " / " (cert.self_signed) } }
            tr { th { "First / last seen" } td { (day(cert.first_seen)) " / " (day(cert.last_seen)) } }
        }
        @if detail.pem.is_some() {
            p { a href=(format!("/certificates/{}.pem", cert.sha256)) { "Download PEM" } }
        }
        h2 { "Chain as served" }
        ol {
            @for sha in &detail.chain {
                li class="mono" { a href=(format!("/certificates/{sha}")) { (sha) } }
            }
        }
        h2 { "Where it is served" }
        table id="served-at" {
            tr { th { "endpoint" } th { "SNI" } th { "position" } th { "app" } th { "env" } th { "owner" } th { "now" } th { "first seen" } th { "last seen" } }
            @for at in &detail.served_at {
                tr {
                    td { a href=(format!("/endpoints?address={}&port={}", at.address, at.port)) { (at.address) ":" (at.port) } }
                    td { (at.sni.as_deref().unwrap_or("-")) }
                    td { (at.position) }
                    td { (at.app.as_deref().unwrap_or("-")) }
                    td { (at.env.as_deref().unwrap_or("-")) }
                    td { (at.owner.as_deref().unwrap_or("-")) }
                    td { @if at.current { "yes" } @else { "no" } }
                    td { (day(at.first_seen)) } td { (day(at.last_seen)) }
                }
            }
        }
    };
    let title = cert.subject.clone();
    Ok(Html(page(&title, body).into_string()).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    expiring_within: Option<String>,
    limit: Option<String>,
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Html<String>, ApiError> {
    let window = query.expiring_within.as_deref().unwrap_or("30d");
    let within = parse_window(window, "expiring_within")?;
    let limit = parse_limit(query.limit.as_deref())?;
    let expiring = state.store.expiring_within(within, limit).await?;
    let records: Vec<CertificateRecord> = expiring.into_iter().map(|e| e.certificate).collect();
    let title = format!("Certificates in use expiring within {window}");
    Ok(Html(
        page(&title, certificate_table(&records)).into_string(),
    ))
}

/// A table of certificates linking to their pages.
pub fn certificate_table(records: &[CertificateRecord]) -> Markup {
    html! {
        @if records.is_empty() { p { "No certificates." } }
        @else {
            table class="certificates" {
                tr { th { "subject" } th { "names" } th { "issuer" } th { "serial" } th { "expires" } th { "left" } }
                @for cert in records {
                    tr {
                        td { a href=(format!("/certificates/{}", cert.sha256)) { (cert.subject) } }
                        td { (cert.sans.join(", ")) }
                        td { (cert.issuer) }
                        td class="mono" { (cert.serial) }
                        td { (day(cert.not_after)) }
                        td { (days_left_cell(cert.not_after)) }
                    }
                }
            }
        }
    }
}

/// A SHA-256 as people paste it: any case, with or without colons.
pub fn normalize_sha256(raw: &str) -> Result<String, ApiError> {
    let hex: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(ApiError::bad_request(
            "sha256 must be 64 hex digits",
            Some("sha256".into()),
        ))
    }
}
