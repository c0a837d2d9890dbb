//! `POST /api/v1/reports`: agent ingest.

use std::io::Read;

use std::marker::PhantomData;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use certfleet_model::AgentReport;
use certfleet_store::{Credential, TokenKind, MAX_CLOCK_SKEW};
use time::OffsetDateTime;

use crate::auth::bearer;
use crate::body::{self, Encoding, ReadError, ReadLimits};
use crate::responses;
use crate::{ApiError, AppState};

/// Authenticates the agent before anything is read of the body, then reads it within the
/// limits, decodes (gzip or plain) and validates the report, checks that the agent speaks
/// only for its own host, stores it in one transaction, and answers `202` with the counts.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<responses::IngestCounts>), ApiError> {
    let credential = authenticate(&state, &headers).await?;
    let report = read_report(&state, &headers, body).await?;
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
    if counts.probes_refused > 0 {
        tracing::warn!(agent = %credential.agent, host = %report.host_key(), refused = counts.probes_refused, "report carries probe results for sockets that are not its host's own; refused");
    }
    if counts.conflicts > 0 {
        tracing::warn!(agent = %credential.agent, host = %report.host_key(), conflicts = counts.conflicts, "report claims endpoints another live host reports; kept as conflicts");
    }
    Ok((StatusCode::ACCEPTED, Json(counts.into())))
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let token = bearer(headers)
        .filter(|token| token.len() <= 256)
        .ok_or(ApiError::Unauthorized)?;
    let credential = state
        .store
        .authenticate(token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if credential.kind != TokenKind::Agent {
        return Err(ApiError::Forbidden {
            message: "an operator token does not report; use an agent token".into(),
            field: None,
        });
    }
    Ok(credential)
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

/// Longest JSON string read in a report (any string the contract allows is 512 bytes at
/// most; validation names the field of one between the two).
const MAX_REPORT_STRING: usize = 4096;

/// The report of a body, streamed: never buffered whole as sent nor decompressed, parsed
/// with every list bounded (`certfleet_model`'s bounded collections), within `max_body`
/// as sent and `max_decompressed` once decompressed.
async fn read_report(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<AgentReport, ApiError> {
    let encoding = Encoding::of(headers)?;
    let max_body = state.ingest.max_body;
    let limits = ReadLimits {
        max_decompressed: state.ingest.max_decompressed,
        max_string: MAX_REPORT_STRING,
    };
    let read = body::declared_too_large(headers, max_body);
    let read = match read {
        Ok(()) => {
            body::parse_streamed(body, max_body, move |reader| {
                body::read_json(reader, encoding, limits, PhantomData::<AgentReport>)
            })
            .await
        }
        Err(error) => Err(error),
    };
    read.map_err(|error| match error {
        ReadError::TooLarge { limit } => ApiError::TooLarge { limit },
        ReadError::Json { field, message } => {
            ApiError::bad_request(format!("invalid report: {message}"), field)
        }
        other => ApiError::bad_request(other.to_string(), None),
    })
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
