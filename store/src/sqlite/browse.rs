//! The browse queries ([`crate::browse`]) on SQLite: bind and read; the SQL is shared
//! ([`crate::browse_sql`]). Times are bound as Unix seconds.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Sqlite, SqlitePool};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::seconds;
use crate::browse::*;
use crate::browse_sql::{self, Bind, Dialect, Query};
use crate::error::{Error, Result};
use crate::notify_records::{notification, NotificationRecord};
use crate::overview_sql;
use crate::records::*;
use crate::rows::{self, ReadRow};

fn bound(query: &Query) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Time(time) => bound.bind(seconds(*time)),
        };
    }
    bound
}

async fn fetch(pool: &SqlitePool, query: &Query) -> Result<Vec<SqliteRow>> {
    Ok(bound(query).fetch_all(pool).await?)
}

pub(super) async fn search_certificates(
    pool: &SqlitePool,
    search: &CertificateSearch,
) -> Result<Vec<CertificateRecord>> {
    let query = browse_sql::certificate_search(search)?;
    fetch(pool, &query)
        .await?
        .iter()
        .map(rows::certificate)
        .collect()
}

pub(super) async fn expiring_leaves(
    pool: &SqlitePool,
    deadline: OffsetDateTime,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ExpiringCertificate>> {
    let query = browse_sql::expiring_leaves(deadline, after, limit)?;
    fetch(pool, &query)
        .await?
        .iter()
        .map(rows::expiring)
        .collect()
}

pub(super) async fn search_endpoints(
    pool: &SqlitePool,
    search: &EndpointSearch,
) -> Result<Vec<EndpointRecord>> {
    let query = browse_sql::endpoint_search(Dialect::Sqlite, search);
    fetch(pool, &query)
        .await?
        .iter()
        .map(rows::endpoint)
        .collect()
}

pub(super) async fn search_sockets(
    pool: &SqlitePool,
    search: &EndpointSearch,
) -> Result<Vec<SocketRecord>> {
    let search = EndpointSearch {
        per_socket: true,
        ..search.clone()
    };
    let heads = search_endpoints(pool, &search).await?;
    let Some(query) = browse_sql::socket_names(&heads) else {
        return Ok(Vec::new());
    };
    let names = fetch(pool, &query)
        .await?
        .iter()
        .map(rows::socket_name)
        .collect::<Result<Vec<_>>>()?;
    Ok(nest(heads, names))
}

pub(super) async fn endpoint(pool: &SqlitePool, id: EndpointId) -> Result<EndpointDetail> {
    let row = sqlx::query(&browse_sql::endpoint_by_id())
        .bind(id.0)
        .fetch_one(pool)
        .await
        .map_err(|error| rows::not_found_as("endpoint", error))?;
    let history = sqlx::query(browse_sql::ENDPOINT_HISTORY)
        .bind(id.0)
        .fetch_all(pool)
        .await?;
    let conflicts = sqlx::query(browse_sql::ENDPOINT_CLAIMS)
        .bind(id.0)
        .fetch_all(pool)
        .await?;
    Ok(EndpointDetail {
        endpoint: rows::endpoint(&row)?,
        history: history
            .iter()
            .filter_map(|row| rows::observation(row).transpose())
            .collect::<Result<_>>()?,
        conflicts: conflicts
            .iter()
            .map(browse_sql::claim)
            .collect::<Result<_>>()?,
    })
}

pub(super) async fn certificate_history(
    pool: &SqlitePool,
    sha256: &str,
) -> Result<CertificateHistory> {
    let rows = sqlx::query(browse_sql::CERTIFICATE_HISTORY)
        .bind(sha256.to_ascii_lowercase())
        .fetch_all(pool)
        .await?;
    browse_sql::history(&rows)
}

pub(super) async fn notification_page(
    pool: &SqlitePool,
    filter: &NotificationFilter,
) -> Result<Vec<NotificationRecord>> {
    let query = browse_sql::notification_page(filter);
    fetch(pool, &query)
        .await?
        .iter()
        .map(notification)
        .collect()
}

pub(super) async fn fleet_overview(
    pool: &SqlitePool,
    now: OffsetDateTime,
) -> Result<FleetOverview> {
    let groups = fetch(pool, &overview_sql::overview_groups(Dialect::Sqlite, now)).await?;
    let counts = sqlx::query(overview_sql::OVERVIEW_COUNTS)
        .fetch_one(pool)
        .await?;
    let mut overview = overview_sql::fold_groups(&groups, &counts, now)?;
    let leaves = bound(&overview_sql::overview_leaves(now))
        .fetch_one(pool)
        .await?;
    overview.certificates_by_days_left = overview_sql::leaf_buckets(&leaves)?;
    let days = sqlx::query(
        "SELECT day, SUM(required) AS required, SUM(optional) AS optional, \
             SUM(absent) AS absent \
         FROM mtls_snapshots WHERE grouping = 'app' \
         GROUP BY day ORDER BY day DESC LIMIT 90",
    )
    .fetch_all(pool)
    .await?;
    for row in days.iter().rev() {
        let text = row.text("day")?;
        let day = Date::parse(&text, format_description!("[year]-[month]-[day]"))
            .map_err(|_| Error::other(format!("stored day {text:?} is not a date")))?;
        overview.mtls_trend.push(MtlsDay {
            day,
            counts: rows::mtls_counts(row)?,
        });
    }
    Ok(overview)
}
