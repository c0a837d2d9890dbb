//! Named endpoints (SQLite): see [`crate::sni`].

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use super::seconds;
use crate::error::Result;
use crate::records::EndpointId;
use crate::sni::{names_to_present, NAMES_PER_ENDPOINT};

/// Creates the `(address, port, name)` endpoints the results reveal, due at `now`, with
/// the workload fields of the endpoint they came from; an existing one only has its
/// `last_seen` carried forward (so it retires with the endpoint that names it).
/// Returns the endpoints created or carried forward.
pub(super) async fn add_named_endpoints(
    connection: &mut SqliteConnection,
    results: &[(EndpointId, ProbeResult)],
    learnt: &[(EndpointId, String)],
    now: OffsetDateTime,
) -> Result<u64> {
    let ids: Vec<i64> = results.iter().map(|(id, _)| id.0).collect();
    let hostnames: HashMap<i64, String> = sqlx::query(
        "SELECT e.id, h.hostname FROM endpoints e JOIN hosts h ON h.id = e.host_id \
         WHERE e.id IN (SELECT value FROM json_each($1))",
    )
    .bind(serde_json::to_string(&ids)?)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("id")?, row.try_get("hostname")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let pairs = names_to_present(results, &hostnames, learnt);
    if pairs.is_empty() {
        return Ok(0);
    }
    let inserted = sqlx::query(
        "INSERT INTO endpoints (address, port, sni, host_id, process, container, netns, \
             app, env, owner, namespace, container_name, starttls, first_seen, last_seen, \
             next_probe_at) \
         SELECT p.address, p.port, j.value ->> 1, p.host_id, p.process, p.container, \
             p.netns, p.app, p.env, p.owner, p.namespace, p.container_name, p.starttls, $2, \
             p.last_seen, $2 \
         FROM json_each($1) AS j JOIN endpoints p ON p.id = j.value ->> 0 \
         WHERE p.retired_at IS NULL AND (SELECT count(*) FROM endpoints s \
             WHERE s.address = p.address AND s.port = p.port AND s.sni <> '') < $3 \
         ON CONFLICT (address, port, sni) DO UPDATE SET last_seen = excluded.last_seen, \
             retired_at = NULL \
         WHERE endpoints.last_seen < excluded.last_seen",
    )
    .bind(serde_json::to_string(&pairs)?)
    .bind(seconds(now))
    .bind(NAMES_PER_ENDPOINT as i64)
    .execute(&mut *connection)
    .await?;
    Ok(inserted.rows_affected())
}
