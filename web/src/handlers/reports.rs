//! `POST /api/v1/reports`: agent ingest.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use certfleet_model::AgentReport;
use certfleet_store::{Credential, IngestCounts, MAX_CLOCK_SKEW};
use time::OffsetDateTime;

use crate::{ApiError, AppState};

/// Authenticates the agent before anything is read of the body, then reads it within the
/// limits, decodes (gzip or plain) and validates the report, checks that the agent speaks
/// only for its own host, stores it in one transaction, and answers `202` with the counts.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestCounts>), ApiError> {
    let credential = authenticate(&state, &headers).await?;
    let body = axum::body::to_bytes(body, state.ingest.max_body)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: state.ingest.max_body,
        });
    let json = decode_body(&state, &headers, body?)?;
    let report = parse_report(&json)?;
    report
        .validate_with(&state.ingest.report)
        .map_err(|error| ApiError::bad_request(error.to_string(), Some(error.field)))?;
    check_host(&credential, &report)?;
    check_clock(&report)?;
    report
        .check_addresses(&state.ingest.report)
        .map_err(|error| ApiError::bad_request(error.to_string(), Some(error.field)))?;
    let counts = state
        .store
        .ingest_report(&credential.agent, &report)
        .await?;
    tracing::debug!(agent = %credential.agent, sockets = counts.sockets, conflicts = counts.conflicts, "report stored");
    if counts.conflicts > 0 {
        tracing::warn!(agent = %credential.agent, host = %report.host_key(), conflicts = counts.conflicts, "report claims endpoints another live host reports; kept as conflicts");
    }
    Ok((StatusCode::ACCEPTED, Json(counts)))
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty() && token.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    state
        .store
        .authenticate(token)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// A token bound to one host reports only that host.
fn check_host(credential: &Credential, report: &AgentReport) -> Result<(), ApiError> {
    match &credential.host_key {
        Some(bound) if *bound != report.host_key() => Err(ApiError::Forbidden {
            message: "host.machine_id: this token is bound to another host".into(),
            field: Some("host.machine_id".into()),
        }),
        _ => Ok(()),
    }
}

/// A report from the future is refused: stored, it would make every honest later report
/// of the host look older, and so change nothing.
fn check_clock(report: &AgentReport) -> Result<(), ApiError> {
    let latest = OffsetDateTime::now_utc() + MAX_CLOCK_SKEW;
    if report.collected_at > latest {
        let minutes = MAX_CLOCK_SKEW.whole_minutes();
        return Err(ApiError::bad_request(
            format!("collected_at: more than {minutes} minutes ahead of the server's clock"),
            Some("collected_at".into()),
        ));
    }
    Ok(())
}

/// The JSON bytes of an ingest body (agent reports, osquery posts) within the ingest
/// limits: 413 past `max_body` as sent, gzip decompressed when `Content-Encoding: gzip`,
/// never more than `max_decompressed` bytes (a gzip bomb stops there).
pub(crate) fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    let body = body.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge {
            limit: state.ingest.max_body,
        },
        other => ApiError::bad_request(other.body_text(), None),
    })?;
    decode_body(state, headers, body)
}

/// The JSON bytes of a body already read: gzip decompressed when `Content-Encoding:
/// gzip`, never more than `max_decompressed` bytes.
pub(crate) fn decode_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<u8>, ApiError> {
    let limit = state.ingest.max_decompressed;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut decoded = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(body.as_ref()).take(limit as u64 + 1);
            reader.read_to_end(&mut decoded).map_err(|error| {
                ApiError::bad_request(format!("invalid gzip body: {error}"), None)
            })?;
            if decoded.len() > limit {
                return Err(ApiError::TooLarge { limit });
            }
            Ok(decoded)
        }
        Some(other) => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Parses the report; a type error names the field's path (`sockets[2].port`).
pub(crate) fn parse_report(json: &[u8]) -> Result<AgentReport, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let report: AgentReport =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let field = (path != ".").then_some(path);
            ApiError::bad_request(format!("invalid report: {}", error.inner()), field)
        })?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("invalid report: {error}"), None))?;
    Ok(report)
}
