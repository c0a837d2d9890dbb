//! osquery's TLS enroll and logger endpoints (`--enroll_tls_endpoint`,
//! `--logger_tls_endpoint`). They answer 404 unless `osquery.enroll_secret` is set.
//!
//! Enrolling with the shared secret hands out a node key, which is an agent token of the
//! agent `osquery:<host identifier>`; results of a `listening_ports` query are stored as
//! that host's agent report. Results of an `interface_addresses` query and the entries'
//! decorations are kept per node in the store (they often come in other posts than the
//! listeners): its wildcard listeners are reachable at its interface addresses, and its
//! decorations are its tags. osquery expects `{"node_invalid": true}` with status 200 for
//! a wrong secret or an unknown node key, and then enrolls again.
//!
//! What is done before the credential is known is bounded: a node key in
//! `Authorization: NodeKey` is checked before the body is read; a credential in the body
//! (osquery's own plugins put it there) is checked once the body is parsed, before any
//! store work, and the parse itself streams the (decompressed) body into typed structs
//! that count what they keep (see `crate::body` and `crate::osquery`).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use certfleet_store::AgentName;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::auth::same_secret;
use crate::body::{self, Encoding, ReadError};
use crate::osquery::{self, EnrollRequest, LogLimits, LogRequest, ParseError, AGENT_PREFIX};
use crate::{ApiError, AppState};

/// Longest node key looked up (agent tokens are much shorter).
const MAX_NODE_KEY: usize = 256;

fn node_invalid() -> Json<Value> {
    Json(json!({"node_invalid": true}))
}

/// Checks the shared secret and answers a fresh node key.
pub async fn enroll(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let secret = configured_secret(&state)?.to_owned();
    let encoding = Encoding::of(request.headers())?;
    let max_decompressed = state.ingest.max_decompressed;
    let request: EnrollRequest = parse_body(&state, request, move |body| {
        osquery::read_enroll(body, encoding, max_decompressed)
    })
    .await?;
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
    // Bound to the host its reports are stored as (`hostname:<host identifier>`).
    let node_key = state
        .store
        .create_token(&agent, Some(&format!("hostname:{host}")))
        .await?;
    tracing::info!(%agent, "osquery node enrolled");
    Ok(Json(json!({"node_key": node_key, "node_invalid": false})))
}

/// Stores the `listening_ports` results of an enrolled node with what is kept of it
/// (interface addresses, wildcard listeners, decorations); status logs are ignored.
pub async fn log(State(state): State<AppState>, request: Request) -> Result<Json<Value>, ApiError> {
    configured_secret(&state)?;
    let encoding = Encoding::of(request.headers())?;
    // A key in the header is checked before the body is read; a key in the body is
    // then ignored.
    let header_agent = match header_key(request.headers()) {
        Some(key) => match authenticate(&state, key).await? {
            Some(agent) => Some(agent),
            None => return Ok(node_invalid()),
        },
        None => None,
    };
    let max_decompressed = state.ingest.max_decompressed;
    let limits = LogLimits::new(state.ingest.report.max_sockets);
    let request: LogRequest = parse_body(&state, request, move |body| {
        osquery::read_log(body, encoding, max_decompressed, limits)
    })
    .await?;
    let agent = match header_agent {
        Some(agent) => agent,
        None => {
            let Some(key) = request.node_key.as_deref() else {
                return Ok(node_invalid());
            };
            match authenticate(&state, key).await? {
                Some(agent) => agent,
                None => return Ok(node_invalid()),
            }
        }
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
    let limits = &state.ingest.report;
    let update = osquery::update(&request.data, limits.max_sockets).map_err(into_api)?;
    if update.is_empty() {
        return Ok(Json(json!({})));
    }
    // The node's kept state, this post merged in (in one transaction: any replica may
    // take its next post).
    let node = state
        .store
        .update_osquery_host(&format!("hostname:{host}"), &update)
        .await?;
    // The post's listeners, and the wildcards kept from earlier posts (reachable now if
    // this post brought interface addresses).
    let mut rows = update.listeners;
    let room = limits.max_sockets.saturating_sub(rows.len());
    rows.extend(node.listeners.iter().copied().take(room));
    if rows.is_empty() {
        return Ok(Json(json!({})));
    }
    let report = osquery::report(&host, &rows, &node, OffsetDateTime::now_utc());
    report
        .validate_with(limits)
        .and_then(|()| report.check_addresses(limits))
        .map_err(|error| ApiError::bad_request(error.to_string(), Some(error.field)))?;
    let counts = state.store.ingest_report(&agent, &report).await?;
    tracing::debug!(%agent, sockets = counts.sockets, "osquery results stored");
    Ok(Json(json!({})))
}

/// `Authorization: NodeKey <key>`, when sent.
fn header_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("NodeKey "))
}

/// The enrolled agent of a node key; `None` for an empty, oversized or unknown key.
async fn authenticate(state: &AppState, key: &str) -> Result<Option<AgentName>, ApiError> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_NODE_KEY {
        return Ok(None);
    }
    Ok(state.store.authenticate_agent(key).await?)
}

/// Streams the body (at most `ingest.max_body` bytes as sent) into `parse`, which runs
/// on the blocking pool: decompression and parsing are CPU work of up to
/// `ingest.max_decompressed` bytes, kept off the threads that serve requests.
async fn parse_body<T: Send + 'static>(
    state: &AppState,
    request: Request,
    parse: impl FnOnce(&mut dyn std::io::Read) -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ApiError> {
    let max_body = state.ingest.max_body;
    body::declared_too_large(request.headers(), max_body).map_err(read_error)?;
    body::parse_streamed(request.into_body(), max_body, parse)
        .await
        .map_err(read_error)
}

fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::TooLarge { limit } => ApiError::TooLarge { limit },
        other => into_api(osquery::into_parse_error(other)),
    }
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
