//! The browse queries ([`crate::browse`]) on PostgreSQL: bind and read; the SQL is
//! shared ([`crate::browse_sql`]).

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgPool, Postgres, Row};
use time::{Date, OffsetDateTime};

use crate::browse::*;
use crate::browse_sql::{self, Bind, Dialect, Query};
use crate::error::Result;
use crate::notify_records::{notification, NotificationRecord};
use crate::overview_sql;
use crate::records::*;
use crate::rows;

fn bound(query: &Query) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Time(time) => bound.bind(*time),
        };
    }
    bound
}

async fn fetch(pool: &PgPool, query: &Query) -> Result<Vec<PgRow>> {
    Ok(bound(query).fetch_all(pool).await?)
}

pub(super) async fn search_certificates(
    pool: &PgPool,
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
    pool: &PgPool,
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
    pool: &PgPool,
    search: &EndpointSearch,
) -> Result<Vec<EndpointRecord>> {
    let query = browse_sql::endpoint_search(Dialect::Postgres, search);
    fetch(pool, &query)
        .await?
        .iter()
        .map(rows::endpoint)
        .collect()
}

pub(super) async fn search_sockets(
    pool: &PgPool,
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

pub(super) async fn endpoint(pool: &PgPool, id: EndpointId) -> Result<EndpointDetail> {
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

pub(super) async fn certificate_history(pool: &PgPool, sha256: &str) -> Result<CertificateHistory> {
    let rows = sqlx::query(browse_sql::CERTIFICATE_HISTORY)
        .bind(sha256.to_ascii_lowercase())
        .fetch_all(pool)
        .await?;
    browse_sql::history(&rows)
}

pub(super) async fn notification_page(
    pool: &PgPool,
    filter: &NotificationFilter,
) -> Result<Vec<NotificationRecord>> {
    let query = browse_sql::notification_page(filter);
    fetch(pool, &query)
        .await?
        .iter()
        .map(notification)
        .collect()
}

pub(super) async fn fleet_overview(pool: &PgPool, now: OffsetDateTime) -> Result<FleetOverview> {
    let groups = fetch(pool, &overview_sql::overview_groups(Dialect::Postgres, now)).await?;
    let counts = sqlx::query(overview_sql::OVERVIEW_COUNTS)
        .fetch_one(pool)
        .await?;
    let mut overview = overview_sql::fold_groups(&groups, &counts, now)?;
    let leaves = bound(&overview_sql::overview_leaves(now))
        .fetch_one(pool)
        .await?;
    overview.certificates_by_days_left = overview_sql::leaf_buckets(&leaves)?;
    let days = sqlx::query(
        "SELECT day, SUM(required)::int8 AS required, SUM(optional)::int8 AS optional, \
             SUM(absent)::int8 AS absent \
         FROM mtls_snapshots WHERE grouping = 'app' \
         GROUP BY day ORDER BY day DESC LIMIT 90",
    )
    .fetch_all(pool)
    .await?;
    for row in days.iter().rev() {
        let day: Date = row.try_get("day")?;
        overview.mtls_trend.push(MtlsDay {
            day,
            counts: rows::mtls_counts(row)?,
        });
    }
    Ok(overview)
}
