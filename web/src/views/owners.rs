//! `/owners/{owner}`: an owner's endpoints (a page at a time) and notifications.

use axum::extract::{Path, State};
use axum::response::Html;
use certfleet_store::{EndpointSearch, NotificationFilter, WorkloadTags};
use maud::html;
use serde::Deserialize;

use super::certificate::notification_table;
use super::endpoints::socket_table;
use super::layout::{encode, next_page, page};
use crate::extract::ApiQuery;
use crate::handlers::params::{id_cursor, DEFAULT_LIMIT};
use crate::handlers::{endpoints, notifications};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerQuery {
    cursor: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(owner): Path<String>,
    ApiQuery(query): ApiQuery<OwnerQuery>,
) -> Result<Html<String>, ApiError> {
    let owner = owner.trim().to_owned();
    if owner.is_empty() || owner.len() > 320 || owner.contains('\0') {
        return Err(ApiError::bad_request(
            "owner must be an email address",
            Some("owner".into()),
        ));
    }
    let search = EndpointSearch {
        tags: WorkloadTags {
            owner: Some(owner.clone()),
            ..WorkloadTags::default()
        },
        after: id_cursor(query.cursor.as_deref())?,
        limit: DEFAULT_LIMIT,
        ..EndpointSearch::default()
    };
    let endpoints_page = endpoints::socket_page(&state.reads, &search).await?;
    let filter = NotificationFilter {
        owner: Some(owner.clone()),
        limit: 50,
        ..NotificationFilter::default()
    };
    let notifications_page = notifications::page(&state.reads, &filter).await?;
    let path = format!("/owners/{}", encode(&owner));
    let body = html! {
        p { "Endpoints whose workload carries the owner tag " strong { (owner) } ", and the expiry notifications sent to this address." }
        h2 { "Endpoints" }
        (socket_table(&endpoints_page.items))
        (next_page(&path, &[], endpoints_page.next_cursor.as_deref()))
        h2 { "Notifications (latest 50)" }
        (notification_table(&notifications_page.items))
        p { a href=(format!("/api/v1/notifications?owner={}", encode(&owner))) { "All of them (JSON, paginated)" } }
    };
    Ok(Html(page(&format!("Owner {owner}"), body).into_string()))
}
