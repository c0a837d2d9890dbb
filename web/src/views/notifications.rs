//! `/notifications/failed`: notifications whose delivery failed, newest first.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::NotificationFilter;
use maud::html;
use serde::Deserialize;

use super::certificate::notification_table;
use super::layout::{next_page, page};
use crate::extract::ApiQuery;
use crate::handlers::notifications;
use crate::handlers::params::{id_cursor, DEFAULT_LIMIT};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedQuery {
    cursor: Option<String>,
}

pub async fn failed(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<FailedQuery>,
) -> Result<Html<String>, ApiError> {
    let filter = NotificationFilter {
        failed_only: true,
        after: id_cursor(query.cursor.as_deref())?,
        limit: DEFAULT_LIMIT,
        ..NotificationFilter::default()
    };
    let page_of = notifications::page(&state.reads, &filter).await?;
    let body = html! {
        p { "Pending notifications with at least one failed delivery attempt; the notifier retries them with back-off." }
        (notification_table(&page_of.items))
        (next_page("/notifications/failed", &[], page_of.next_cursor.as_deref()))
    };
    Ok(Html(page("Failed notifications", body).into_string()))
}
