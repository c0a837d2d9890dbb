//! Static targets (PostgreSQL): see [`crate::Store::upsert_static_endpoints`].

use sqlx::PgPool;
use time::OffsetDateTime;

use super::CHUNK;
use crate::error::Result;
use crate::records::StaticEndpoint;
use crate::sni::static_rows;

pub(super) async fn upsert(
    pool: &PgPool,
    endpoints: &[StaticEndpoint],
    now: OffsetDateTime,
) -> Result<u64> {
    let rows = static_rows(endpoints);
    let mut transaction = pool.begin().await?;
    let mut touched = 0;
    for chunk in rows.chunks(CHUNK) {
        let text =
            |f: fn(&StaticEndpoint) -> Option<String>| chunk.iter().map(f).collect::<Vec<_>>();
        let done = sqlx::query(
            "INSERT INTO endpoints (address, port, sni, sni_source, starttls, app, env, owner, \
                 first_seen, last_seen, next_probe_at) \
             SELECT u.address, u.port, u.sni, CASE WHEN u.sni <> '' THEN 'config' END, \
                 u.starttls, u.app, u.env, u.owner, $8, $8, $8 \
             FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[]) AS u(address, port, sni, starttls, app, env, owner) \
             ON CONFLICT (address, port, sni) DO UPDATE SET last_seen = EXCLUDED.last_seen, \
                 retired_at = NULL, \
                 sni_source = COALESCE(EXCLUDED.sni_source, endpoints.sni_source), \
                 starttls = COALESCE(EXCLUDED.starttls, endpoints.starttls), \
                 app = COALESCE(EXCLUDED.app, endpoints.app), \
                 env = COALESCE(EXCLUDED.env, endpoints.env), \
                 owner = COALESCE(EXCLUDED.owner, endpoints.owner)",
        )
        .bind(text(|e| Some(e.address.to_string())))
        .bind(chunk.iter().map(|e| i32::from(e.port)).collect::<Vec<_>>())
        .bind(text(|e| e.sni.clone()))
        .bind(text(|e| e.starttls.clone()))
        .bind(text(|e| e.app.clone()))
        .bind(text(|e| e.env.clone()))
        .bind(text(|e| e.owner.clone()))
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        touched += done.rows_affected();
    }
    transaction.commit().await?;
    Ok(touched)
}
