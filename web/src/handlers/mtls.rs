//! `GET /api/v1/mtls/summary?by=app|env` and `GET /api/v1/overview`: both from the
//! cached fleet overview (at most `WebOptions::overview_ttl` old).

use axum::extract::State;
use axum::Json;
use certfleet_store::MtlsGrouping;
use serde::Deserialize;

use crate::extract::ApiQuery;
use crate::responses;
use crate::state::Web;
use crate::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    by: Option<String>,
}

pub fn parse_grouping(raw: Option<&str>) -> Result<MtlsGrouping, ApiError> {
    match raw.map(str::trim).unwrap_or("app") {
        "app" => Ok(MtlsGrouping::App),
        "env" => Ok(MtlsGrouping::Env),
        _ => Err(ApiError::bad_request(
            "by must be app or env",
            Some("by".into()),
        )),
    }
}

pub(crate) async fn summary(
    State(web): State<Web>,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Json<responses::MtlsSummary>, ApiError> {
    let by = parse_grouping(query.by.as_deref())?;
    let overview = web.overview.overview(&web.app.reads).await?;
    Ok(Json(responses::MtlsSummary::new(by, &overview)))
}

pub(crate) async fn overview(
    State(web): State<Web>,
) -> Result<Json<responses::FleetOverview>, ApiError> {
    let overview = web.overview.overview(&web.app.reads).await?;
    Ok(Json(overview.as_ref().into()))
}
