//! Looking certificates and endpoints up.

use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::seconds;
use crate::error::Result;
use crate::names::{hostname_candidates, normalize_serial};
use crate::records::*;
use crate::rows::{self, ReadRow, CERTIFICATE_COLUMNS, ENDPOINT_SELECT};

pub(super) async fn certificate(pool: &SqlitePool, sha256: &str) -> Result<CertificateDetail> {
    let sha256 = sha256.to_ascii_lowercase();
    let row = sqlx::query(&format!(
        "SELECT {CERTIFICATE_COLUMNS}, c.pem FROM certificates c WHERE c.sha256 = $1"
    ))
    .bind(&sha256)
    .fetch_one(pool)
    .await
    .map_err(|error| rows::not_found_as("certificate", error))?;
    let certificate = rows::certificate(&row)?;
    let pem = row.opt_text("pem")?;
    let chain = sqlx::query_scalar(rows::LATEST_CHAIN)
        .bind(&sha256)
        .fetch_all(pool)
        .await?;
    let served_at = sqlx::query(rows::SERVED_AT)
        .bind(&sha256)
        .fetch_all(pool)
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

pub(super) async fn certificates_by_hostname(
    pool: &SqlitePool,
    hostname: &str,
    limit: u32,
) -> Result<Vec<CertificateRecord>> {
    let names = hostname_candidates(hostname)?;
    let rows = sqlx::query(&format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE c.sha256 IN \
             (SELECT n.sha256 FROM certificate_names n \
              WHERE n.name IN (SELECT value FROM json_each($1))) \
         ORDER BY c.not_after DESC, c.sha256 LIMIT $2"
    ))
    .bind(serde_json::to_string(&names)?)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(rows::certificate).collect()
}

pub(super) async fn certificates_by_serial(
    pool: &SqlitePool,
    serial: &str,
    limit: u32,
) -> Result<Vec<CertificateRecord>> {
    let serial = normalize_serial(serial)?;
    let rows = sqlx::query(&format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE c.serial = $1 \
         ORDER BY c.not_after DESC, c.sha256 LIMIT $2"
    ))
    .bind(&serial)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(rows::certificate).collect()
}

pub(super) async fn expiring_within(
    pool: &SqlitePool,
    deadline: OffsetDateTime,
    limit: u32,
) -> Result<Vec<ExpiringCertificate>> {
    let rows = sqlx::query(&rows::expiring_query())
        .bind(seconds(deadline))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(rows::expiring).collect()
}

pub(super) async fn endpoints(
    pool: &SqlitePool,
    filter: &EndpointFilter,
) -> Result<Vec<EndpointRecord>> {
    let rows = sqlx::query(&format!(
        "{ENDPOINT_SELECT} WHERE (e.retired_at IS NULL OR $1) \
             AND ($2 IS NULL OR e.address = $2) \
             AND ($3 IS NULL OR e.port = $3) \
             AND ($4 IS NULL OR e.app = $4) \
             AND ($5 IS NULL OR e.env = $5) \
             AND e.id > $6 \
         ORDER BY e.id LIMIT $7"
    ))
    .bind(filter.include_retired)
    .bind(filter.address.map(|address| address.to_string()))
    .bind(filter.port.map(i32::from))
    .bind(&filter.app)
    .bind(&filter.env)
    .bind(filter.after.map_or(0, |EndpointId(id)| id))
    .bind(i64::from(filter.limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(rows::endpoint).collect()
}
