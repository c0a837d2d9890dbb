//! Probe now from a browser: the endpoint page's button (`POST /endpoints/{id}/probe`, with
//! an operator token typed into the form) and the signed "renewed? check again" links of
//! the digests (`GET /probe-link` shows what the link asks and a button; `POST
//! /probe-link` asks). A GET never asks for a probe: mail scanners open links.
//!
//! The button's form carries the operator token itself, so a page on another site cannot
//! submit it for someone (it does not know the token); a link is its own credential,
//! signed and expiring (`certfleet_model::probe_link`). Failures are pages too, with the
//! status and, for the rate limit, `Retry-After`.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use certfleet_model::probe_link::{LinkError, LinkParts};
use certfleet_store::EndpointId;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use super::layout::page;
use crate::handlers::endpoints::parse_id;
use crate::handlers::probe::{operator, request};
use crate::responses::ProbeRequested;
use crate::{ApiError, AppState};

/// Bytes of form a probe request may carry (a token, or a link's three parts).
pub const MAX_FORM: usize = 1024;

/// The endpoint page's form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonForm {
    token: String,
}

/// `POST /endpoints/{id}/probe`: the button.
pub async fn button(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Form<ButtonForm>, FormRejection>,
) -> Result<Response, PageError> {
    let id = parse_id(&id)?;
    let Form(form) = form.map_err(rejected)?;
    let token = form.token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::Unauthorized.into());
    }
    let operator = operator(&state, token).await?;
    let requested = request(&*state.store, &state.probe_now, id).await?;
    tracing::info!(%operator, endpoint = id.0, "probe requested from the endpoint page");
    Ok(requested_page(&state, requested).await)
}

/// `GET /probe-link?endpoint=&expires=&signature=`: what the link asks, and a button.
pub async fn confirm(
    State(state): State<AppState>,
    query: Result<Query<LinkParts>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(parts) =
        query.map_err(|rejection| ApiError::bad_request(rejection.body_text(), None))?;
    let id = verify(&state, &parts)?;
    let detail = state.store.endpoint(id).await?;
    let e = &detail.endpoint;
    let body = html! {
        p { "Probe " strong { (socket(e)) } " now, to see whether it serves a renewed certificate?" }
        form method="post" action="/probe-link" {
            input type="hidden" name="endpoint" value=(parts.endpoint);
            input type="hidden" name="expires" value=(parts.expires);
            input type="hidden" name="signature" value=(parts.signature);
            button type="submit" id="check-again" { "Check again" }
        }
        p { "Nothing is probed until you press the button." }
    };
    Ok(Html(page("Renewed? Check again", body).into_string()).into_response())
}

/// `POST /probe-link` (a form with the link's parts): asks for the probe.
pub async fn check(
    State(state): State<AppState>,
    form: Result<Form<LinkParts>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(parts) = form.map_err(rejected)?;
    let id = verify(&state, &parts)?;
    let requested = request(&*state.store, &state.probe_now, id).await?;
    tracing::info!(endpoint = id.0, "probe requested by a signed link");
    Ok(requested_page(&state, requested).await)
}

fn verify(state: &AppState, parts: &LinkParts) -> Result<EndpointId, PageError> {
    let Some(key) = &state.probe_now.link_key else {
        return Err(PageError(ApiError::NotFound));
    };
    let id = key
        .verify(parts, OffsetDateTime::now_utc())
        .map_err(|error| {
            tracing::info!(%error, "probe link refused");
            PageError(link_error(error))
        })?;
    Ok(EndpointId(id))
}

fn link_error(error: LinkError) -> ApiError {
    let message = error.to_string();
    match error {
        LinkError::Malformed(part) => ApiError::bad_request(message, Some(part.into())),
        LinkError::BadSignature => ApiError::Forbidden {
            message,
            field: Some("signature".into()),
        },
        LinkError::Expired => ApiError::Gone(format!(
            "{message}: open a newer digest, or ask an operator to probe the endpoint"
        )),
        LinkError::ShortSecret => ApiError::Internal(message),
    }
}

fn rejected(rejection: FormRejection) -> PageError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return PageError(ApiError::TooLarge { limit: MAX_FORM });
    }
    PageError(ApiError::bad_request(rejection.body_text(), None))
}

/// `202` and a page saying what was asked and until when.
async fn requested_page(state: &AppState, requested: ProbeRequested) -> Response {
    let id = EndpointId(requested.endpoint);
    // The page names the socket when it can; the request is made either way.
    let name = match state.store.endpoint(id).await {
        Ok(detail) => socket(&detail.endpoint),
        Err(_) => format!("endpoint {}", id.0),
    };
    let body = html! {
        p id="probe-requested" { "A probe of " strong { (name) } " was requested at " (clock(requested.requested_at)) "." }
        p { "A prober takes it within seconds; expect the result by " (clock(requested.expected_by)) ". "
            a href=(format!("/endpoints/{}", id.0)) { "See the endpoint" } }
    };
    let html = Html(page("Probe requested", body).into_string());
    (StatusCode::ACCEPTED, html).into_response()
}

fn socket(e: &certfleet_store::EndpointRecord) -> String {
    match &e.sni {
        Some(sni) => format!("{}:{} ({sni})", e.address, e.port),
        None => format!("{}:{}", e.address, e.port),
    }
}

/// `10:04:05 UTC`.
fn clock(at: OffsetDateTime) -> String {
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        super::layout::day(at),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The endpoint page's "Probe now" form.
pub fn button_form(id: EndpointId) -> Markup {
    html! {
        form id="probe-now" method="post" action=(format!("/endpoints/{}/probe", id.0)) {
            label { "Operator token " input type="password" name="token" autocomplete="off" required; }
            " "
            button type="submit" { "Probe now" }
        }
    }
}

/// A failure of a page route, shown as a page with its status (and `Retry-After` for
/// the rate limit).
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError(error)
    }
}

impl From<certfleet_store::Error> for PageError {
    fn from(error: certfleet_store::Error) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = error.status();
        if let ApiError::Internal(detail) = &error {
            tracing::error!(%detail, "internal error");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! { p id="error" { (error.to_string()) } };
        let mut response = (status, Html(page(title, body).into_string())).into_response();
        error.add_headers(response.headers_mut());
        response
    }
}
