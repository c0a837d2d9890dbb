//! Static targets (SQLite): see [`crate::Store::upsert_static_endpoints`].

use sqlx::SqlitePool;
use time::OffsetDateTime;

use super::{seconds, write, CHUNK};
use crate::error::Result;
use crate::records::StaticEndpoint;
use crate::sni::static_rows;

pub(super) async fn upsert(
    pool: &SqlitePool,
    endpoints: &[StaticEndpoint],
    now: OffsetDateTime,
) -> Result<u64> {
    let rows = static_rows(endpoints);
    let mut transaction = write(pool).await?;
    let mut touched = 0;
    for chunk in rows.chunks(CHUNK) {
        let json: Vec<_> = chunk
            .iter()
            .map(|e| {
                serde_json::json!([
                    e.address.to_string(),
                    e.port,
                    e.sni,
                    e.starttls,
                    e.app,
                    e.env,
                    e.owner
                ])
            })
            .collect();
        let done = sqlx::query(
            "INSERT INTO endpoints (address, port, sni, sni_source, starttls, app, env, \
                 owner, first_seen, last_seen, next_probe_at) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, \
                 CASE WHEN j.value ->> 2 <> '' THEN 'config' END, j.value ->> 3, \
                 j.value ->> 4, j.value ->> 5, j.value ->> 6, $2, $2, $2 \
             FROM json_each($1) AS j WHERE true \
             ON CONFLICT (address, port, sni) DO UPDATE SET last_seen = excluded.last_seen, \
                 retired_at = NULL, \
                 sni_source = COALESCE(excluded.sni_source, endpoints.sni_source), \
                 starttls = COALESCE(excluded.starttls, endpoints.starttls), \
                 app = COALESCE(excluded.app, endpoints.app), \
                 env = COALESCE(excluded.env, endpoints.env), \
                 owner = COALESCE(excluded.owner, endpoints.owner)",
        )
        .bind(serde_json::to_string(&json)?)
        .bind(seconds(now))
        .execute(&mut *transaction)
        .await?;
        touched += done.rows_affected();
    }
    transaction.commit().await?;
    Ok(touched)
}
