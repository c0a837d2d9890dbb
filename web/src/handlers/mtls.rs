//! `GET /api/v1/mtls/summary?by=app|env`.

use axum::extract::State;
use axum::Json;
use certfleet_store::{MtlsGrouping, MtlsSummary};
use serde::Deserialize;

use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    by: Option<String>,
}

pub async fn summary(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<MtlsSummary>, ApiError> {
    let by = match query.by.as_deref().unwrap_or("app") {
        "app" => MtlsGrouping::App,
        "env" => MtlsGrouping::Env,
        _ => {
            return Err(ApiError::bad_request(
                "by must be app or env",
                Some("by".into()),
            ))
        }
    };
    Ok(Json(state.store.mtls_summary(by).await?))
}
