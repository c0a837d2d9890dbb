//! The state kept of enrolled osquery nodes.

use certfleet_model::{OsqueryHost, OsqueryUpdate};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;

use super::{seconds, write};
use crate::error::Result;
use crate::osquery::{check_key, encoded, merged};

/// Merges an update into a node's state under the write lock (`BEGIN IMMEDIATE`).
pub(super) async fn update_osquery_host(
    pool: &SqlitePool,
    host_key: &str,
    update: &OsqueryUpdate,
    now: OffsetDateTime,
) -> Result<OsqueryHost> {
    check_key(host_key)?;
    let mut transaction = write(pool).await?;
    let stored: Option<String> = sqlx::query("SELECT state FROM osquery_hosts WHERE host_key = $1")
        .bind(host_key)
        .fetch_optional(&mut *transaction)
        .await?
        .map(|row| row.try_get("state"))
        .transpose()?;
    let host = merged(stored.as_deref(), update)?;
    sqlx::query(
        "INSERT INTO osquery_hosts (host_key, state, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (host_key) DO UPDATE SET state = excluded.state, \
             updated_at = excluded.updated_at",
    )
    .bind(host_key)
    .bind(encoded(&host)?)
    .bind(seconds(now))
    .execute(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(host)
}
