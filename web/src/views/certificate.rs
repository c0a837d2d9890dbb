//! `/certificates/{sha256}`: one certificate, everything known about it; and
//! `/certificates/{sha256}.pem`, its PEM.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use certfleet_store::{NotificationRecord, Succession};
use maud::{html, Markup};

use super::layout::{day, days_left, days_left_cell, encode, link, or_dash, page};
use crate::handlers::certificates::load;
use crate::{ApiError, AppState};

pub async fn show(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(sha256) = sha256.strip_suffix(".pem") {
        let view = load(&state, sha256).await?;
        let pem = view.detail.pem.ok_or(ApiError::NotFound)?;
        let name = &view.detail.certificate.sha256;
        let disposition = format!("attachment; filename=\"{name}.pem\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            pem,
        )
            .into_response());
    }
    let view = load(&state, &sha256).await?;
    let detail = &view.detail;
    let cert = &detail.certificate;
    let left = days_left(cert.not_after);
    let serving_now = detail.served_at.iter().filter(|at| at.current).count();
    let body = html! {
        p class="summary" id="summary" {
            @if left < 0 { span class="bad" { "Expired " (-left) " days ago" } }
            @else { span class=(if left < 30 { "warn" } else { "good" }) { (left) " days left" } }
            ", served now by " strong id="serving-now" { (serving_now) } " endpoint(s)."
        }
        table class="fields" {
            tr { th { "Subject" } td id="subject" { (cert.subject) } }
            tr { th { "Issuer" } td { a href=(link("/certificates", &[("issuer", &cert.issuer)])) { (cert.issuer) } } }
            tr { th { "Serial" } td class="mono" id="serial" { (cert.serial) } }
            tr { th { "SHA-256" } td class="mono" id="sha256" { (cert.sha256) } }
            tr { th { "Names" } td { (cert.sans.join(", ")) } }
            tr { th { "Valid" } td { (day(cert.not_before)) " to " (day(cert.not_after)) " (" span id="days-left" { (days_left_cell(cert.not_after)) } ")" } }
            tr { th { "Key" } td { (cert.key.kind) " " (cert.key.bits) @if let Some(curve) = &cert.key.curve { " (" (curve) ")" } } }
            tr { th { "Signature" } td { (cert.signature_algorithm) } }
            tr { th { "CA / self-signed" } td { (cert.is_ca) " / " (cert.self_signed) } }
            tr { th { "First / last seen" } td { (day(cert.seen.first_seen)) " / " (day(cert.seen.last_seen)) } }
            tr { th { "Owners" } td id="owners" {
                @if view.owners.is_empty() { "-" }
                @for (index, owner) in view.owners.iter().enumerate() {
                    @if index > 0 { ", " }
                    a href=(format!("/owners/{}", encode(owner))) { (owner) }
                }
            } }
        }
        @if detail.pem.is_some() {
            p { a href=(format!("/certificates/{}.pem", cert.sha256)) { "Download PEM" } }
        }
        h2 { "Chain as served" }
        ol class="chain" {
            @for sha in &detail.chain {
                li class="mono" {
                    @if *sha == cert.sha256 { (sha) " (this certificate)" }
                    @else { a href=(format!("/certificates/{sha}")) { (sha) } }
                }
            }
        }
        h2 { "Where it is served" }
        table id="served-at" {
            tr { th { "endpoint" } th { "SNI" } th { "position" } th { "app" } th { "env" } th { "owner" } th { "now" } th { "first seen" } th { "last seen" } }
            @for at in &detail.served_at {
                tr {
                    td { a href=(format!("/endpoints/{}", at.endpoint_id.0)) { (at.address) ":" (at.port) } }
                    td { (or_dash(at.sni.as_deref())) }
                    td { (at.position) }
                    td { (or_dash(at.tags.app.as_deref())) }
                    td { (or_dash(at.tags.env.as_deref())) }
                    td { (or_dash(at.tags.owner.as_deref())) }
                    td { @if at.current { "yes" } @else { "no" } }
                    td { (day(at.seen.first_seen)) } td { (day(at.seen.last_seen)) }
                }
            }
        }
        h2 { "History" }
        (successions("Replaced by", "replaced-by", &view.history.replaced_by))
        (successions("Replaces", "replaces", &view.history.replaces))
        h2 { "Notifications" }
        (notification_table(&view.notifications))
    };
    Ok(Html(page(&cert.subject, body).into_string()).into_response())
}

fn successions(title: &str, id: &str, list: &[Succession]) -> Markup {
    html! {
        h3 { (title) }
        @if list.is_empty() { p id=(id) { "Nothing recorded." } }
        @else {
            table id=(id) {
                tr { th { "certificate" } th { "expires" } th { "endpoints" } th { "first served there" } }
                @for other in list {
                    tr {
                        td { a href=(format!("/certificates/{}", other.sha256)) { (other.subject) } }
                        td { (day(other.not_after)) }
                        td { (other.endpoints) }
                        td { (day(other.first_seen)) }
                    }
                }
            }
        }
    }
}

/// The delivery state of a notification in words.
pub fn delivery_state(notification: &NotificationRecord) -> String {
    if let Some(sent) = notification.sent_at {
        return format!("sent {}", day(sent));
    }
    if let Some(resolution) = &notification.resolution {
        return format!("resolved: {resolution}");
    }
    match &notification.last_error {
        Some(error) => format!("failed {} time(s): {error}", notification.attempts),
        None => "pending".to_owned(),
    }
}

/// Notifications with their delivery state.
pub fn notification_table(notifications: &[NotificationRecord]) -> Markup {
    html! {
        @if notifications.is_empty() { p id="notifications" { "No notifications." } }
        @else {
            table id="notifications" {
                tr { th { "certificate" } th { "owner" } th { "threshold" } th { "claimed" } th { "delivery" } }
                @for n in notifications {
                    tr {
                        td class="mono" { a href=(format!("/certificates/{}", n.sha256)) { (&n.sha256[..16.min(n.sha256.len())]) "…" } }
                        td { a href=(format!("/owners/{}", encode(&n.owner))) { (n.owner) } }
                        td { (n.threshold) }
                        td { (day(n.created_at)) }
                        td class=(if n.last_error.is_some() && n.sent_at.is_none() { "bad" } else { "" }) { (delivery_state(n)) }
                    }
                }
            }
        }
    }
}
