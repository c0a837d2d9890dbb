//! `GET /api/v1/certificates` (by hostname, serial or expiry window) and
//! `GET /api/v1/certificates/{sha256}`.

use axum::extract::{Path, State};
use axum::Json;
use certfleet_store::CertificateDetail;
use serde::{Deserialize, Serialize};

use super::params::{parse_limit, parse_window};
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateQuery {
    hostname: Option<String>,
    serial: Option<String>,
    expiring_within: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page of results. `next_cursor` is null on the last page.
#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CertificateQuery>,
) -> Result<Json<Page<serde_json::Value>>, ApiError> {
    let limit = parse_limit(query.limit.as_deref())?;
    if query.cursor.is_some() {
        // Lookups by name or serial return small sets; a window is bounded by `limit`.
        return Err(ApiError::bad_request(
            "cursor is not valid for this listing",
            Some("cursor".into()),
        ));
    }
    let items: Vec<serde_json::Value> =
        match (&query.hostname, &query.serial, &query.expiring_within) {
            (Some(hostname), None, None) => to_values(
                state
                    .store
                    .certificates_by_hostname(hostname, limit)
                    .await?,
            )?,
            (None, Some(serial), None) => {
                to_values(state.store.certificates_by_serial(serial, limit).await?)?
            }
            (None, None, Some(window)) => {
                let within = parse_window(window, "expiring_within")?;
                to_values(state.store.expiring_within(within, limit).await?)?
            }
            (None, None, None) => {
                return Err(ApiError::bad_request(
                    "give one of hostname, serial or expiring_within",
                    Some("hostname".into()),
                ))
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give only one of hostname, serial or expiring_within",
                    Some("hostname".into()),
                ))
            }
        };
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Json<CertificateDetail>, ApiError> {
    let sha256 = sha256.trim().to_ascii_lowercase().replace(':', "");
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "sha256 must be 64 hex digits",
            Some("sha256".into()),
        ));
    }
    Ok(Json(state.store.certificate(&sha256).await?))
}

fn to_values<T: Serialize>(items: Vec<T>) -> Result<Vec<serde_json::Value>, ApiError> {
    items
        .into_iter()
        .map(|item| {
            serde_json::to_value(item).map_err(|error| ApiError::Internal(error.to_string()))
        })
        .collect()
}
