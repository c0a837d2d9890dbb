//! `GET /api/v1/notifications?failed=&owner=&limit=&cursor=`: notifications and their
//! delivery state, newest first.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use certfleet_store::{NotificationFilter, NotificationRecord, ReadModel};
use serde::Deserialize;

use super::params::{id_cursor, parse_bool, parse_limit, present, Page};
use crate::extract::ApiQuery;
use crate::responses;
use crate::{ApiError, AppState};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    pub failed: Option<String>,
    pub owner: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl NotificationQuery {
    pub fn filter(&self) -> Result<NotificationFilter, ApiError> {
        Ok(NotificationFilter {
            failed_only: match present(&self.failed) {
                Some(raw) => parse_bool(raw, "failed")?,
                None => false,
            },
            owner: present(&self.owner).map(str::to_owned),
            after: id_cursor(self.cursor.as_deref())?,
            limit: parse_limit(self.limit.as_deref())?,
        })
    }
}

/// One page of notifications.
pub async fn page(
    store: &Arc<dyn ReadModel>,
    filter: &NotificationFilter,
) -> Result<Page<NotificationRecord>, ApiError> {
    let items = store.notification_page(filter).await?;
    Ok(Page::new(items, filter.limit, |n| n.id.to_string()))
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<NotificationQuery>,
) -> Result<Json<Page<responses::Notification>>, ApiError> {
    Ok(Json(
        page(&state.reads, &query.filter()?).await?.map(Into::into),
    ))
}
