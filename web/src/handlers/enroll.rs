//! `POST /api/v1/agents/enroll`: a host exchanges the shared enroll secret
//! (`server.agent_enroll_secret`, sent as `Authorization: Bearer`) for its own credential,
//! a token bound to its machine id, once. Answers 404 unless the secret is configured.
//!
//! The secret is checked before the body is read; the body is a few bytes of JSON
//! (`{"machine_id": "...", "hostname": "..."}`, at most 4 KiB). A host that already holds an
//! active enrolled credential gets `409`: a stolen secret cannot take over a host that has
//! enrolled, and an operator re-admits a re-imaged host with `certfleet token revoke
//! enrolled:<machine id>`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use certfleet_store::AgentName;
use serde::Deserialize;
use serde_json::{json, Value};

use super::reports::decode_body;
use crate::auth::{bearer, same_secret};
use crate::{ApiError, AppState};

/// Agent names of enrolled hosts start with this.
pub const ENROLLED_PREFIX: &str = "enrolled:";
const MAX_BODY: usize = 4096;
/// Longest host key accepted (machine ids are 32 hex digits).
const MAX_HOST_KEY: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    #[serde(default)]
    machine_id: String,
    hostname: String,
}

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let secret = state
        .agent_enroll_secret
        .as_deref()
        .filter(|secret| !secret.is_empty())
        .ok_or(ApiError::NotFound)?;
    let presented = bearer(&headers).unwrap_or("");
    if !same_secret(secret.as_bytes(), presented.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge { limit: MAX_BODY })?;
    let body = decode_body(&state, &headers, body)?;
    let request: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid body: {error}"), None))?;
    let host_key = host_key(&request)?;
    let agent = AgentName::new(format!("{ENROLLED_PREFIX}{host_key}"))?;
    match state.store.enroll(&agent, &host_key).await? {
        Some(token) => {
            tracing::info!(%agent, "host enrolled");
            Ok((
                StatusCode::CREATED,
                Json(json!({"token": token, "agent": agent.as_str(), "host": host_key})),
            ))
        }
        None => {
            tracing::warn!(%agent, "enrollment refused: the host already holds a credential");
            Err(ApiError::Conflict(format!(
                "host {host_key} is already enrolled; an operator can revoke its credential \
                 (certfleet token revoke {agent})"
            )))
        }
    }
}

/// The host key the credential is bound to: the machine id, or `hostname:<name>`.
fn host_key(request: &EnrollRequest) -> Result<String, ApiError> {
    let (field, key) = match request.machine_id.trim() {
        "" => ("hostname", format!("hostname:{}", request.hostname.trim())),
        machine_id => ("machine_id", machine_id.to_owned()),
    };
    let bad =
        |message: &str| ApiError::bad_request(format!("{field}: {message}"), Some(field.into()));
    if key == "hostname:" {
        return Err(ApiError::bad_request(
            "hostname: must not be empty",
            Some("hostname".into()),
        ));
    }
    if key.len() > MAX_HOST_KEY {
        return Err(bad("too long"));
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains control characters or spaces"));
    }
    Ok(key)
}
