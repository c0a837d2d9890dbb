//! `GET /api/v1/endpoints?address=&port=&app=&env=&limit=&cursor=`.

use axum::extract::State;
use axum::Json;
use certfleet_store::{EndpointFilter, EndpointId, EndpointRecord};
use serde::Deserialize;

use super::certificates::Page;
use super::params::parse_limit;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    address: Option<String>,
    port: Option<String>,
    app: Option<String>,
    env: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Json<Page<EndpointRecord>>, ApiError> {
    let bad = |field: &str, message: &str| ApiError::bad_request(message, Some(field.to_owned()));
    let address = match &query.address {
        Some(raw) => Some(
            raw.trim()
                .parse()
                .map_err(|_| bad("address", "address must be an IP address"))?,
        ),
        None => None,
    };
    let port = match &query.port {
        Some(raw) => match raw.trim().parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(bad("port", "port must be a number from 1 to 65535")),
        },
        None => None,
    };
    let after = match &query.cursor {
        Some(raw) => {
            Some(EndpointId(raw.trim().parse::<i64>().map_err(|_| {
                bad("cursor", "cursor is not one this server gave")
            })?))
        }
        None => None,
    };
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = EndpointFilter {
        address,
        port,
        app: query.app.clone(),
        env: query.env.clone(),
        include_retired: false,
        after,
        limit,
    };
    let items = state.store.endpoints(&filter).await?;
    let next_cursor = match items.last() {
        Some(last) if items.len() == limit as usize => Some(last.id.0.to_string()),
        _ => None,
    };
    Ok(Json(Page { items, next_cursor }))
}
