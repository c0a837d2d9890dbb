//! `POST /api/v1/endpoints/{id}/probe`: an operator asks for an endpoint to be probed now.
//! The pages' button and the signed links in digests ask through [`request`] too.
//!
//! Who may: an operator token (`certfleet token create --operator NAME`). No token, an
//! unknown or revoked one: `401`. The read token or an agent token: `403` (they are
//! valid credentials, for something else).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use certfleet_store::{AgentName, EndpointId, ProbeRequest, Store, TokenKind};

use super::endpoints::parse_id;
use crate::auth::{bearer, same_secret};
use crate::responses::ProbeRequested;
use crate::state::ProbeNow;
use crate::{ApiError, AppState};

/// Bytes of body the request may carry (it needs none; a client may send `{}`).
pub const MAX_BODY: usize = 1024;

/// Longest bearer token looked up.
const MAX_TOKEN: usize = 256;

pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ProbeRequested>), ApiError> {
    let id = parse_id(&id)?;
    let presented = bearer(&headers)
        .filter(|token| token.len() <= MAX_TOKEN)
        .ok_or(ApiError::Unauthorized)?;
    let operator = operator(&state, presented).await?;
    // The body is not used, but it is bounded: read (and dropped) only after the token.
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge { limit: MAX_BODY })?;
    let requested = request(&*state.store, &state.probe_now, id).await?;
    tracing::info!(%operator, endpoint = id.0, "probe requested");
    Ok((StatusCode::ACCEPTED, Json(requested)))
}

/// The operator a presented token was issued to: `403` for the read token and agent
/// tokens, `401` for anything else that is not an operator token.
pub(crate) async fn operator(state: &AppState, presented: &str) -> Result<AgentName, ApiError> {
    let forbidden = || ApiError::Forbidden {
        message:
            "asking for probes needs an operator token (certfleet token create --operator NAME)"
                .into(),
        field: None,
    };
    if let Some(read_token) = state.read_token.as_deref() {
        if same_secret(read_token.as_bytes(), presented.as_bytes()) {
            return Err(forbidden());
        }
    }
    match state.store.authenticate(presented).await? {
        Some(credential) if credential.kind == TokenKind::Operator => Ok(credential.agent),
        Some(_) => Err(forbidden()),
        None => Err(ApiError::Unauthorized),
    }
}

/// Asks the store for the probe, within the rate limit.
pub(crate) async fn request(
    store: &dyn Store,
    options: &ProbeNow,
    id: EndpointId,
) -> Result<ProbeRequested, ApiError> {
    let window = time::Duration::try_from(options.window)
        .map_err(|error| ApiError::Internal(format!("probe-now window: {error}")))?;
    match store.request_probe(id, window).await? {
        ProbeRequest::Requested { at } => Ok(ProbeRequested {
            endpoint: id.0,
            requested_at: at,
            expected_by: at + options.expected_within,
        }),
        ProbeRequest::Limited { retry_after } => Err(ApiError::Limited {
            // Whole seconds, rounded up: asking again then is never too early.
            retry_after: u64::try_from(retry_after.whole_seconds()).unwrap_or(0)
                + u64::from(retry_after.subsec_nanoseconds() > 0),
            window: options.window.as_secs(),
        }),
        // A 202 would promise a probe no prober will ever take.
        ProbeRequest::ProbedByAgent { hostname } => Err(ApiError::Conflict(format!(
            "this endpoint is probed by the agent of host {hostname:?} (agent.probe_local), \
             not by the probers: its next result comes with that host's next report"
        ))),
    }
}
