//! The state kept of enrolled osquery nodes.

use certfleet_model::{OsqueryHost, OsqueryUpdate};
use time::OffsetDateTime;

use crate::db::{Bind, Db, Query, Tx};
use crate::error::{Error, Result};
use crate::osquery::{check_key, encoded, merged};
use crate::rows::ReadRow;

/// Merges an update into a node's state with its row locked (PostgreSQL `FOR UPDATE`;
/// SQLite's write transaction holds the whole database): two replicas taking posts of the
/// same node at once merge one after the other.
pub(crate) async fn update_osquery_host<D: Db>(
    db: &D,
    host_key: &str,
    update: &OsqueryUpdate,
    now: OffsetDateTime,
) -> Result<OsqueryHost> {
    check_key(host_key)?;
    let key = || Bind::Text(host_key.to_string());
    let mut transaction = db.begin().await?;
    transaction
        .execute(&Query {
            sql: "INSERT INTO osquery_hosts (host_key, state, updated_at) VALUES ($1, '{}', $2) \
                  ON CONFLICT (host_key) DO NOTHING"
                .into(),
            binds: vec![key(), Bind::Time(now)],
        })
        .await?;
    let select = Query {
        sql: format!(
            "SELECT state FROM osquery_hosts WHERE host_key = $1{}",
            D::DIALECT.for_update("")
        ),
        binds: vec![key()],
    };
    let rows = transaction.rows(&select).await?;
    let row = rows.first().ok_or(Error::NotFound {
        what: "osquery host",
    })?;
    let host = merged(Some(&row.text("state")?), update)?;
    transaction
        .execute(&Query {
            sql: "UPDATE osquery_hosts SET state = $2, updated_at = $3 WHERE host_key = $1".into(),
            binds: vec![key(), Bind::Text(encoded(&host)?), Bind::Time(now)],
        })
        .await?;
    transaction.commit().await?;
    Ok(host)
}
