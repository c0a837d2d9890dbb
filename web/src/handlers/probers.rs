//! `GET /api/v1/probers`: the probers that announced themselves (name, zones, version,
//! last seen, probes per second) and each zone's queue with its live probers. Read now,
//! not from the cached overview: it is what an operator checks after starting a prober.

use axum::extract::State;
use axum::Json;

use crate::responses;
use crate::{ApiError, AppState};

pub async fn index(State(state): State<AppState>) -> Result<Json<responses::Probers>, ApiError> {
    let status = state.store.prober_status().await?;
    Ok(Json(responses::Probers::from(&status)))
}
