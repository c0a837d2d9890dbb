//! `/healthz` (the process answers) and `/readyz` (and its database does).

use axum::extract::State;
use axum::http::StatusCode;

use crate::{ApiError, AppState};

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, &'static str), ApiError> {
    state.store.ping().await?;
    Ok((StatusCode::OK, "ready\n"))
}
