//! The read model: lookups, lists, the overview and the mTLS summary, written once for
//! both databases against [`Db`]. The SQL is shared ([`crate::browse_sql`],
//! [`crate::overview_sql`], [`crate::rows`]); where the dialects differ, [`Dialect`] says
//! how.

use time::OffsetDateTime;

use crate::browse::*;
use crate::browse_sql;
use crate::db::{plain, read_all, with_arg, Bind, Db, Query};
use crate::error::Result;
use crate::notify_records::{notification, NotificationRecord};
use crate::overview_sql;
use crate::records::*;
use crate::rotation;
use crate::rows::{self, ReadRow, CERTIFICATE_COLUMNS, ENDPOINT_SELECT};

pub(crate) async fn search_certificates(
    db: &impl Db,
    search: &CertificateSearch,
) -> Result<Vec<CertificateRecord>> {
    let query = browse_sql::certificate_search(search)?;
    read_all(db, &query, rows::certificate).await
}

/// A page of [`crate::ReadModel::export_page`], in primary key order, so that each page
/// is one index range however deep the export is.
pub(crate) async fn export_page(db: &impl Db, page: &ExportPage) -> Result<ExportRows> {
    let mut query = Query::default();
    let since = query.arg(Bind::Time(page.since));
    let limit = page.limit;
    Ok(match &page.after {
        ExportCursor::Certificates(after) => {
            let after = query.arg(Bind::Text(after.clone().unwrap_or_default()));
            query.sql = format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE c.sha256 > {after} \
                 AND c.last_seen >= {since} ORDER BY c.sha256 LIMIT {limit}"
            );
            ExportRows::Certificates(read_all(db, &query, rows::certificate).await?)
        }
        ExportCursor::Endpoints(after) => {
            let after = query.arg(Bind::Int(after.map_or(0, |id| id.0)));
            query.sql = format!(
                "{ENDPOINT_SELECT} WHERE e.id > {after} AND e.last_seen >= {since} \
                 ORDER BY e.id LIMIT {limit}"
            );
            ExportRows::Endpoints(read_all(db, &query, rows::endpoint).await?)
        }
    })
}

pub(crate) async fn expiring_leaves(
    db: &impl Db,
    deadline: OffsetDateTime,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<ExpiringCertificate>> {
    let query = browse_sql::expiring_leaves(deadline, after, limit)?;
    read_all(db, &query, rows::expiring).await
}

pub(crate) async fn search_endpoints<D: Db>(
    db: &D,
    search: &EndpointSearch,
) -> Result<Vec<EndpointRecord>> {
    let query = browse_sql::endpoint_search(D::DIALECT, search);
    read_all(db, &query, rows::endpoint).await
}

pub(crate) async fn search_sockets<D: Db>(
    db: &D,
    search: &EndpointSearch,
) -> Result<Vec<SocketRecord>> {
    let search = EndpointSearch {
        per_socket: true,
        ..search.clone()
    };
    let heads = search_endpoints(db, &search).await?;
    let Some(query) = browse_sql::socket_names::<D>(&heads) else {
        return Ok(Vec::new());
    };
    let names = db
        .rows(&query)
        .await?
        .iter()
        .map(rows::socket_name)
        .collect::<Result<Vec<_>>>()?;
    Ok(nest(heads, names))
}

pub(crate) async fn endpoint(db: &impl Db, id: EndpointId) -> Result<EndpointDetail> {
    let row = db
        .row(
            &with_arg(browse_sql::endpoint_by_id(), Bind::Int(id.0)),
            "endpoint",
        )
        .await?;
    let history = db
        .rows(&with_arg(browse_sql::ENDPOINT_HISTORY, Bind::Int(id.0)))
        .await?;
    let conflicts = db
        .rows(&with_arg(browse_sql::ENDPOINT_CLAIMS, Bind::Int(id.0)))
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

pub(crate) async fn certificate_history(db: &impl Db, sha256: &str) -> Result<CertificateHistory> {
    let query = with_arg(
        browse_sql::CERTIFICATE_HISTORY,
        Bind::Text(sha256.to_ascii_lowercase()),
    );
    browse_sql::history(&db.rows(&query).await?)
}

pub(crate) async fn notification_page(
    db: &impl Db,
    filter: &NotificationFilter,
) -> Result<Vec<NotificationRecord>> {
    let query = browse_sql::notification_page(filter);
    read_all(db, &query, notification).await
}

pub(crate) async fn fleet_overview<D: Db>(db: &D, now: OffsetDateTime) -> Result<FleetOverview> {
    let groups = db
        .rows(&overview_sql::overview_groups(D::DIALECT, now))
        .await?;
    let counts = db
        .row(&plain(overview_sql::OVERVIEW_COUNTS), "overview")
        .await?;
    let mut overview = overview_sql::fold_groups(&groups, &counts, now)?;
    let leaves = db
        .row(&overview_sql::overview_leaves(now), "overview")
        .await?;
    overview.certificates_by_days_left = overview_sql::leaf_buckets(&leaves)?;
    overview.mtls_trend = mtls_trend(db, MtlsGrouping::App).await?;
    let latency = db.row(&rotation::latency_query(now), "overview").await?;
    overview.discovery = rotation::latency(&latency)?;
    Ok(overview)
}

pub(crate) async fn save_overview(db: &impl Db, overview: &FleetOverview) -> Result<()> {
    let query = Query {
        sql: "INSERT INTO overview_snapshot (id, body) VALUES (1, $1) \
              ON CONFLICT (id) DO UPDATE SET body = excluded.body"
            .into(),
        binds: vec![Bind::Text(serde_json::to_string(overview)?)],
    };
    db.write(&query).await?;
    Ok(())
}

pub(crate) async fn saved_overview(db: &impl Db) -> Result<Option<FleetOverview>> {
    let rows = db
        .rows(&plain("SELECT body FROM overview_snapshot WHERE id = 1"))
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    match serde_json::from_str(&row.text("body")?) {
        Ok(overview) => Ok(Some(overview)),
        Err(error) => {
            tracing::info!(%error, "the saved fleet overview is not readable by this version");
            Ok(None)
        }
    }
}

/// The daily mTLS snapshots of one grouping, the whole fleet's sums, oldest first.
async fn mtls_trend(db: &impl Db, by: MtlsGrouping) -> Result<Vec<MtlsDay>> {
    let query = with_arg(
        "SELECT day, CAST(SUM(required) AS BIGINT) AS required, \
             CAST(SUM(optional) AS BIGINT) AS optional, CAST(SUM(absent) AS BIGINT) AS absent \
         FROM mtls_snapshots WHERE grouping = $1 \
         GROUP BY day ORDER BY day DESC LIMIT 90",
        Bind::Text(by.as_str().to_owned()),
    );
    db.rows(&query)
        .await?
        .iter()
        .rev()
        .map(|row| {
            Ok(MtlsDay {
                day: row.date("day")?,
                counts: rows::mtls_counts(row)?,
            })
        })
        .collect()
}

pub(crate) async fn mtls_summary(db: &impl Db, by: MtlsGrouping) -> Result<MtlsSummary> {
    let mut groups = db
        .rows(&plain(rows::mtls_groups_query(by)))
        .await?
        .iter()
        .map(rows::mtls_group)
        .collect::<Result<Vec<_>>>()?;
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    let trend = mtls_trend(db, by).await?;
    Ok(MtlsSummary { by, groups, trend })
}

pub(crate) async fn inventory(db: &impl Db) -> Result<Inventory> {
    rows::inventory(&db.row(&plain(rows::INVENTORY), "inventory").await?)
}

pub(crate) async fn tokens(db: &impl Db) -> Result<Vec<TokenRecord>> {
    let query =
        plain("SELECT agent, kind, host_key, created_at, revoked_at FROM agent_tokens ORDER BY id");
    db.rows(&query)
        .await?
        .iter()
        .map(|row| {
            Ok(TokenRecord {
                agent: row.text("agent")?,
                kind: rows::token_kind(row)?,
                host_key: row.opt_text("host_key")?,
                created_at: row.time("created_at")?,
                revoked_at: row.opt_time("revoked_at")?,
            })
        })
        .collect()
}

pub(crate) async fn certificate(db: &impl Db, sha256: &str) -> Result<CertificateDetail> {
    let sha256 = Bind::Text(sha256.to_ascii_lowercase());
    let sql =
        format!("SELECT {CERTIFICATE_COLUMNS}, c.pem FROM certificates c WHERE c.sha256 = $1");
    let row = db
        .row(&with_arg(sql, sha256.clone()), "certificate")
        .await?;
    let certificate = rows::certificate(&row)?;
    let pem = row.opt_text("pem")?;
    let chain = db
        .rows(&with_arg(rows::LATEST_CHAIN, sha256.clone()))
        .await?
        .iter()
        .map(|row| row.text("sha256"))
        .collect::<Result<_>>()?;
    let served_at = db
        .rows(&with_arg(rows::SERVED_AT, sha256))
        .await?
        .iter()
        .map(rows::served_at)
        .collect::<Result<_>>()?;
    Ok(CertificateDetail {
        certificate,
        pem,
        chain,
        served_at,
    })
}

pub(crate) async fn endpoints(
    db: &impl Db,
    filter: &EndpointFilter,
) -> Result<Vec<EndpointRecord>> {
    let mut query = Query::default();
    let mut conditions = Vec::new();
    if !filter.include_retired {
        conditions.push("e.retired_at IS NULL".to_owned());
    }
    if let Some(address) = filter.address {
        let address = query.arg(Bind::Text(address.to_string()));
        conditions.push(format!("e.address = {address}"));
    }
    if let Some(port) = filter.port {
        let port = query.arg(Bind::Int(i64::from(port)));
        conditions.push(format!("e.port = {port}"));
    }
    for (column, value) in [("app", &filter.app), ("env", &filter.env)] {
        if let Some(value) = value {
            let value = query.arg(Bind::Text(value.clone()));
            conditions.push(format!("e.{column} = {value}"));
        }
    }
    let after = query.arg(Bind::Int(filter.after.map_or(0, |EndpointId(id)| id)));
    conditions.push(format!("e.id > {after}"));
    let limit = query.arg(Bind::Int(i64::from(filter.limit)));
    query.sql = format!(
        "{ENDPOINT_SELECT} WHERE {} ORDER BY e.id LIMIT {limit}",
        conditions.join(" AND ")
    );
    read_all(db, &query, rows::endpoint).await
}
