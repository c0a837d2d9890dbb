//! `/mtls?by=app|env`: adoption of every app (or env), a page at a time, from the cached
//! overview.

use axum::extract::State;
use axum::response::Html;
use certfleet_store::MtlsGroup;
use maud::html;
use serde::Deserialize;

use super::dashboard::groups_rows;
use super::layout::{next_page, page};
use crate::extract::ApiQuery;
use crate::handlers::mtls::parse_grouping;
use crate::handlers::params::DEFAULT_LIMIT;
use crate::state::Web;
use crate::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsQuery {
    by: Option<String>,
    cursor: Option<String>,
}

pub(crate) async fn index(
    State(web): State<Web>,
    ApiQuery(query): ApiQuery<GroupsQuery>,
) -> Result<Html<String>, ApiError> {
    let by = parse_grouping(query.by.as_deref())?;
    let overview = web.overview.overview(&web.app.reads).await?;
    let groups = match by {
        certfleet_store::MtlsGrouping::App => &overview.mtls_by_app,
        certfleet_store::MtlsGrouping::Env => &overview.mtls_by_env,
    };
    // Groups are in key order (untagged first); the cursor is the last key shown.
    let start = match query.cursor.as_deref() {
        Some(cursor) => groups
            .partition_point(|g| g.key.as_deref().is_some_and(|k| k <= cursor) || g.key.is_none()),
        None => 0,
    };
    let shown: Vec<&MtlsGroup> = groups
        .iter()
        .skip(start)
        .take(DEFAULT_LIMIT as usize)
        .collect();
    let next = match shown.last() {
        Some(last) if start + shown.len() < groups.len() => {
            last.key.clone().or(Some(String::new()))
        }
        _ => None,
    };
    let tag = by.as_str();
    let body = html! {
        p { (groups.len()) " " (tag) " values." }
        (groups_rows(&shown, tag))
        (next_page("/mtls", &[("by", tag)], next.as_deref()))
    };
    Ok(Html(
        page(&format!("Mutual TLS by {tag}"), body).into_string(),
    ))
}
