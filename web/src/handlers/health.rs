//! `/healthz` (the process answers) and `/readyz` (its database answers and every role
//! of the process runs).

use axum::extract::State;
use axum::http::StatusCode;

use crate::{ApiError, AppState};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `ready` and a line per role (`api: running`), or `503` with the roles that are not
/// running.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, String), ApiError> {
    state.store.ping().await?;
    let roles = state.roles.snapshot();
    let lines: String = roles
        .iter()
        .map(|(role, role_state)| format!("{role}: {role_state}\n"))
        .collect();
    if state.roles.ready() {
        Ok((StatusCode::OK, format!("ready\n{lines}")))
    } else {
        Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{lines}"),
        ))
    }
}
