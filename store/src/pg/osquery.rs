//! The state kept of enrolled osquery nodes.

use certfleet_model::{OsqueryHost, OsqueryUpdate};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use crate::error::Result;
use crate::osquery::{check_key, encoded, merged};

/// Merges an update into a node's state with its row locked: two replicas taking posts
/// of the same node at once merge one after the other.
pub(super) async fn update_osquery_host(
    pool: &PgPool,
    host_key: &str,
    update: &OsqueryUpdate,
    now: OffsetDateTime,
) -> Result<OsqueryHost> {
    check_key(host_key)?;
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "INSERT INTO osquery_hosts (host_key, state, updated_at) VALUES ($1, '{}', $2) \
         ON CONFLICT (host_key) DO NOTHING",
    )
    .bind(host_key)
    .bind(now)
    .execute(&mut *transaction)
    .await?;
    let stored: String =
        sqlx::query("SELECT state FROM osquery_hosts WHERE host_key = $1 FOR UPDATE")
            .bind(host_key)
            .fetch_one(&mut *transaction)
            .await?
            .try_get("state")?;
    let host = merged(Some(&stored), update)?;
    sqlx::query("UPDATE osquery_hosts SET state = $2, updated_at = $3 WHERE host_key = $1")
        .bind(host_key)
        .bind(encoded(&host)?)
        .bind(now)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(host)
}
