//! osquery's TLS enroll and logger endpoints (`--enroll_tls_endpoint`,
//! `--logger_tls_endpoint`). They answer 404 unless `osquery.enroll_secret` is set.
//!
//! Enrolling with the shared secret hands out a node key, which is an agent token of the
//! agent `osquery:<host identifier>`; results of a `listening_ports` query are stored as
//! that host's agent report. osquery expects `{"node_invalid": true}` with status 200 for
//! a wrong secret or an unknown node key, and then enrolls again.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use certfleet_store::AgentName;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::reports::read_body;
use crate::auth::same_secret;
use crate::osquery::{self, EnrollRequest, LogRequest, ParseError, AGENT_PREFIX};
use crate::{ApiError, AppState};

fn node_invalid() -> Json<Value> {
    Json(json!({"node_invalid": true}))
}

/// Checks the shared secret and answers a fresh node key.
pub async fn enroll(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let secret = configured_secret(&state)?;
    let json = read_body(&state, &headers, body)?;
    let request: EnrollRequest = osquery::parse_body(&json).map_err(into_api)?;
    if !same_secret(secret.as_bytes(), request.enroll_secret.as_bytes()) {
        tracing::info!("osquery enroll with a wrong secret");
        return Ok(node_invalid());
    }
    let host = osquery::sanitize_host_identifier(&request.host_identifier).ok_or_else(|| {
        ApiError::bad_request(
            "host_identifier: must not be empty",
            Some("host_identifier".into()),
        )
    })?;
    let agent = AgentName::new(format!("{AGENT_PREFIX}{host}"))?;
    let node_key = state.store.create_agent_token(&agent).await?;
    tracing::info!(%agent, "osquery node enrolled");
    Ok(Json(json!({"node_key": node_key, "node_invalid": false})))
}

/// Stores the `listening_ports` results of an enrolled node; status logs are ignored.
pub async fn log(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    configured_secret(&state)?;
    let json = read_body(&state, &headers, body)?;
    let request: LogRequest = osquery::parse_body(&json).map_err(into_api)?;
    let header_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("NodeKey "));
    let Some(node_key) = request.node_key.as_deref().or(header_key).map(str::trim) else {
        return Ok(node_invalid());
    };
    if node_key.is_empty() || node_key.len() > 256 {
        return Ok(node_invalid());
    }
    let Some(agent) = state.store.authenticate_agent(node_key).await? else {
        return Ok(node_invalid());
    };
    let Some(host) = agent
        .to_string()
        .strip_prefix(AGENT_PREFIX)
        .map(str::to_owned)
    else {
        return Ok(node_invalid());
    };
    if request.log_type != "result" {
        return Ok(Json(json!({})));
    }
    let rows = osquery::listening_rows(&request.data, state.ingest.report.max_sockets)
        .map_err(into_api)?;
    if rows.is_empty() {
        return Ok(Json(json!({})));
    }
    let report = osquery::report(&host, &rows, OffsetDateTime::now_utc());
    report
        .validate_with(&state.ingest.report)
        .map_err(|error| ApiError::bad_request(error.to_string(), Some(error.field)))?;
    let counts = state.store.ingest_report(&agent, &report).await?;
    tracing::debug!(%agent, sockets = counts.sockets, "osquery results stored");
    Ok(Json(json!({})))
}

fn configured_secret(state: &AppState) -> Result<&str, ApiError> {
    state
        .osquery_enroll_secret
        .as_deref()
        .filter(|secret| !secret.is_empty())
        .ok_or(ApiError::NotFound)
}

fn into_api(error: ParseError) -> ApiError {
    let message = match &error.field {
        Some(field) => format!("{field}: {}", error.message),
        None => error.message,
    };
    ApiError::bad_request(message, error.field)
}
