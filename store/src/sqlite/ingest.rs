//! Reports into hosts and endpoints: one transaction, one statement per 10,000 endpoints.

use certfleet_model::AgentReport;
use sqlx::{SqliteConnection, SqlitePool};
use time::{Duration, OffsetDateTime};

use super::{seconds, write, CHUNK};
use crate::error::{Error, Result};
use crate::plan::{plan_report, EndpointRow, HostRow};
use crate::records::{AgentName, EndpointId, IngestCounts};

/// What one report may do.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Another host's sighting of an endpoint within this window makes a claim a conflict.
    pub claim_window: Duration,
    /// Active endpoints one host may stand for.
    pub max_endpoints_per_host: u64,
}

pub(super) async fn ingest_report(
    pool: &SqlitePool,
    agent: &AgentName,
    report: &AgentReport,
    bounds: Bounds,
    now: OffsetDateTime,
) -> Result<IngestCounts> {
    let plan = plan_report(agent, report, now)?;
    let mut transaction = write(pool).await?;
    // A new host, or new tags: the names under its sockets follow (owner, app, env, and a
    // new tenant's fresh start), below.
    let same_tags: Option<bool> =
        sqlx::query_scalar("SELECT json(tags) = json($2) FROM hosts WHERE host_key = $1")
            .bind(&plan.host.key)
            .bind(&plan.host.tags)
            .fetch_optional(&mut *transaction)
            .await?;
    let host_id = upsert_host(&mut transaction, &plan.host).await?;
    let claimed_before = plan.host.seen_at - bounds.claim_window;
    let mut counts = plan.counts;
    for chunk in plan.endpoints.chunks(CHUNK) {
        let written = upsert_endpoints(
            &mut transaction,
            host_id,
            &plan.host,
            chunk,
            claimed_before,
            now,
        )
        .await?;
        if written < chunk.len() as u64 {
            // Some were replays or another live host's: keep the latter as conflicts.
            counts.conflicts += record_claims(&mut transaction, host_id, &plan.host, chunk).await?;
        }
        if same_tags != Some(true) {
            follow_named(&mut transaction, chunk, now).await?;
        }
    }
    if settle_claims(&mut transaction, host_id).await? > 0 && same_tags == Some(true) {
        // Claims settled by taking their endpoints over: their names follow too.
        for chunk in plan.endpoints.chunks(CHUNK) {
            follow_named(&mut transaction, chunk, now).await?;
        }
    }
    if !plan.endpoints.is_empty() {
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM endpoints \
             WHERE host_id = $1 AND retired_at IS NULL AND sni = ''",
        )
        .bind(host_id)
        .fetch_one(&mut *transaction)
        .await?;
        if u64::try_from(active).unwrap_or(u64::MAX) > bounds.max_endpoints_per_host {
            // Dropping the transaction rolls the report back.
            let max = bounds.max_endpoints_per_host;
            return Err(Error::invalid(
                "sockets",
                format!("the host would stand for more than {max} active endpoints"),
            ));
        }
    }
    transaction.commit().await?;
    Ok(counts)
}

/// Inserts or refreshes the host; an older report than the one stored changes nothing.
async fn upsert_host(connection: &mut SqliteConnection, host: &HostRow) -> Result<i64> {
    sqlx::query(
        "INSERT INTO hosts (host_key, hostname, machine_id, agent, agent_version, addresses, \
             tags, collected_at, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         ON CONFLICT (host_key) DO UPDATE SET \
             hostname = excluded.hostname, machine_id = excluded.machine_id, \
             agent = excluded.agent, agent_version = excluded.agent_version, \
             addresses = excluded.addresses, tags = excluded.tags, \
             collected_at = excluded.collected_at, \
             last_seen = max(hosts.last_seen, excluded.last_seen) \
         WHERE hosts.collected_at <= excluded.collected_at",
    )
    .bind(&host.key)
    .bind(&host.hostname)
    .bind(&host.machine_id)
    .bind(&host.agent)
    .bind(&host.agent_version)
    .bind(&host.addresses)
    .bind(&host.tags)
    .bind(seconds(host.collected_at))
    .bind(seconds(host.seen_at))
    .execute(&mut *connection)
    .await?;
    let id = sqlx::query_scalar("SELECT id FROM hosts WHERE host_key = $1")
        .bind(&host.key)
        .fetch_one(&mut *connection)
        .await?;
    Ok(id)
}

/// Inserts new endpoints (due at once) and refreshes known ones, unless the stored
/// sighting is newer; a replay, which changes nothing, writes nothing. A re-reported
/// retired endpoint comes back.
async fn upsert_endpoints(
    connection: &mut SqliteConnection,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
    claimed_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<u64> {
    let rows: Vec<_> = endpoints
        .iter()
        .map(|e| {
            (
                &e.address,
                e.port,
                &e.process,
                &e.container,
                e.netns,
                &e.app,
                &e.env,
                &e.owner,
                &e.namespace,
                &e.container_name,
            )
        })
        .collect();
    let done = sqlx::query(
        "INSERT INTO endpoints (address, port, sni, host_id, process, container, netns, app, \
             env, owner, namespace, container_name, first_seen, last_seen, next_probe_at) \
         SELECT j.value ->> 0, j.value ->> 1, '', $1, j.value ->> 2, j.value ->> 3, \
             j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, \
             j.value ->> 9, $2, $2, $3 \
         FROM json_each($4) AS j WHERE true \
         ON CONFLICT (address, port, sni) DO UPDATE SET \
             host_id = excluded.host_id, process = excluded.process, \
             container = excluded.container, netns = excluded.netns, app = excluded.app, \
             env = excluded.env, owner = excluded.owner, namespace = excluded.namespace, \
             container_name = excluded.container_name, \
             retired_at = CASE WHEN excluded.last_seen > endpoints.last_seen THEN NULL \
                 ELSE endpoints.retired_at END, \
             last_seen = excluded.last_seen, \
             observation_id = CASE WHEN endpoints.host_id <> excluded.host_id THEN NULL \
                 ELSE endpoints.observation_id END, \
             leaf_sha256 = CASE WHEN endpoints.host_id <> excluded.host_id THEN NULL \
                 ELSE endpoints.leaf_sha256 END, \
             leaf_not_after = CASE WHEN endpoints.host_id <> excluded.host_id THEN NULL \
                 ELSE endpoints.leaf_not_after END, \
             failures = CASE WHEN endpoints.host_id <> excluded.host_id THEN 0 \
                 ELSE endpoints.failures END, \
             next_probe_at = CASE WHEN endpoints.lease_owner IS NULL \
                 AND (endpoints.host_id <> excluded.host_id \
                     OR (endpoints.failures >= 2 AND endpoints.last_seen < $5)) \
                 THEN $3 ELSE endpoints.next_probe_at END \
         WHERE (endpoints.last_seen < excluded.last_seen \
             OR (endpoints.last_seen = excluded.last_seen \
                 AND (endpoints.host_id IS NOT excluded.host_id \
                     OR endpoints.process IS NOT excluded.process \
                     OR endpoints.container IS NOT excluded.container \
                     OR endpoints.netns IS NOT excluded.netns \
                     OR endpoints.app IS NOT excluded.app \
                     OR endpoints.env IS NOT excluded.env \
                     OR endpoints.owner IS NOT excluded.owner \
                     OR endpoints.namespace IS NOT excluded.namespace \
                     OR endpoints.container_name IS NOT excluded.container_name))) \
             AND (endpoints.host_id IS NULL OR endpoints.host_id = excluded.host_id \
                 OR endpoints.retired_at IS NOT NULL OR endpoints.last_seen < $5)",
    )
    .bind(host_id)
    .bind(seconds(host.seen_at))
    .bind(seconds(now))
    .bind(serde_json::to_string(&rows)?)
    .bind(seconds(claimed_before))
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// Records this host's claims on the endpoints of `endpoints` that another host holds.
/// Returns how many.
async fn record_claims(
    connection: &mut SqliteConnection,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
) -> Result<u64> {
    let rows: Vec<_> = endpoints.iter().map(|e| (&e.address, e.port)).collect();
    let done = sqlx::query(
        "INSERT INTO endpoint_claims (endpoint_id, host_id, first_seen, last_seen) \
         SELECT e.id, $1, $2, $2 FROM json_each($3) AS j \
         JOIN endpoints e ON e.address = j.value ->> 0 AND e.port = j.value ->> 1 \
             AND e.sni = '' \
         WHERE e.host_id <> $1 \
         ON CONFLICT (endpoint_id, host_id) DO UPDATE SET \
             last_seen = max(endpoint_claims.last_seen, excluded.last_seen)",
    )
    .bind(host_id)
    .bind(seconds(host.seen_at))
    .bind(serde_json::to_string(&rows)?)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// Drops this host's claims on endpoints that are now its own; returns how many.
async fn settle_claims(connection: &mut SqliteConnection, host_id: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM endpoint_claims WHERE host_id = $1 AND EXISTS \
             (SELECT 1 FROM endpoints e WHERE e.id = endpoint_claims.endpoint_id \
                 AND e.host_id = $1)",
    )
    .bind(host_id)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// An operator's decision on the claims of an endpoint (see `Store::settle_conflict`).
pub(super) async fn settle_conflict(
    pool: &SqlitePool,
    endpoint: EndpointId,
    to: Option<&str>,
    now: OffsetDateTime,
) -> Result<u64> {
    let mut transaction = write(pool).await?;
    if let Some(host_key) = to {
        let moved = sqlx::query(
            "UPDATE endpoints SET host_id = h.id, \
                 app = NULLIF(json_extract(h.tags, '$.app'), ''), \
                 env = NULLIF(json_extract(h.tags, '$.env'), ''), \
                 owner = NULLIF(json_extract(h.tags, '$.owner'), ''), \
                 last_seen = max(endpoints.last_seen, c.last_seen), next_probe_at = $3 \
             FROM endpoint_claims c JOIN hosts h ON h.id = c.host_id \
             WHERE endpoints.id = $1 AND c.endpoint_id = endpoints.id AND h.host_key = $2",
        )
        .bind(endpoint.0)
        .bind(host_key)
        .bind(seconds(now))
        .execute(&mut *transaction)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(Error::NotFound { what: "claim" });
        }
    }
    let removed = sqlx::query("DELETE FROM endpoint_claims WHERE endpoint_id = $1")
        .bind(endpoint.0)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(Error::NotFound { what: "claim" });
    }
    transaction.commit().await?;
    Ok(removed)
}

/// The named endpoints (SNI variants) under the sockets of `endpoints` take their socket's
/// host, app, env and owner; under a new host (the socket changed hands) they also lose
/// the previous tenant's observation and are due at once, like the socket itself.
async fn follow_named(
    connection: &mut SqliteConnection,
    endpoints: &[EndpointRow],
    now: OffsetDateTime,
) -> Result<()> {
    let rows: Vec<_> = endpoints.iter().map(|e| (&e.address, e.port)).collect();
    sqlx::query(
        "UPDATE endpoints SET host_id = b.host_id, app = b.app, env = b.env, \
             owner = b.owner, namespace = b.namespace, container_name = b.container_name, \
             observation_id = CASE WHEN endpoints.host_id <> b.host_id THEN NULL \
                 ELSE endpoints.observation_id END, \
             leaf_sha256 = CASE WHEN endpoints.host_id <> b.host_id THEN NULL \
                 ELSE endpoints.leaf_sha256 END, \
             leaf_not_after = CASE WHEN endpoints.host_id <> b.host_id THEN NULL \
                 ELSE endpoints.leaf_not_after END, \
             next_probe_at = CASE WHEN endpoints.host_id <> b.host_id \
                 AND endpoints.lease_owner IS NULL THEN $2 ELSE endpoints.next_probe_at END \
         FROM (SELECT e.address, e.port, e.host_id, e.app, e.env, e.owner, e.namespace, \
                 e.container_name \
             FROM json_each($1) AS j JOIN endpoints e ON e.address = j.value ->> 0 \
                 AND e.port = j.value ->> 1 AND e.sni = '') AS b \
         WHERE endpoints.address = b.address AND endpoints.port = b.port \
             AND endpoints.sni <> '' \
             AND (endpoints.host_id IS NOT b.host_id OR endpoints.app IS NOT b.app \
                 OR endpoints.env IS NOT b.env OR endpoints.owner IS NOT b.owner \
                 OR endpoints.namespace IS NOT b.namespace \
                 OR endpoints.container_name IS NOT b.container_name)",
    )
    .bind(serde_json::to_string(&rows)?)
    .bind(seconds(now))
    .execute(&mut *connection)
    .await?;
    Ok(())
}
