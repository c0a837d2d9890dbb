//! Reports into hosts and endpoints: one transaction, one statement per 10,000 endpoints.

use certfleet_model::AgentReport;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::CHUNK;
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
    pool: &PgPool,
    agent: &AgentName,
    report: &AgentReport,
    bounds: Bounds,
    now: OffsetDateTime,
) -> Result<IngestCounts> {
    let plan = plan_report(agent, report, now)?;
    let mut transaction = pool.begin().await?;
    // A new host, or new tags: the names under its sockets follow (owner, app, env, and a
    // new tenant's fresh start), below.
    let same_tags: Option<bool> =
        sqlx::query_scalar("SELECT tags = $2::jsonb FROM hosts WHERE host_key = $1")
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
async fn upsert_host(connection: &mut sqlx::PgConnection, host: &HostRow) -> Result<i64> {
    let updated: Option<i64> = sqlx::query_scalar(
        "INSERT INTO hosts (host_key, hostname, machine_id, agent, agent_version, addresses, \
             tags, collected_at, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $9) \
         ON CONFLICT (host_key) DO UPDATE SET \
             hostname = EXCLUDED.hostname, machine_id = EXCLUDED.machine_id, \
             agent = EXCLUDED.agent, agent_version = EXCLUDED.agent_version, \
             addresses = EXCLUDED.addresses, tags = EXCLUDED.tags, \
             collected_at = EXCLUDED.collected_at, \
             last_seen = GREATEST(hosts.last_seen, EXCLUDED.last_seen) \
         WHERE hosts.collected_at <= EXCLUDED.collected_at \
         RETURNING id",
    )
    .bind(&host.key)
    .bind(&host.hostname)
    .bind(&host.machine_id)
    .bind(&host.agent)
    .bind(&host.agent_version)
    .bind(&host.addresses)
    .bind(&host.tags)
    .bind(host.collected_at)
    .bind(host.seen_at)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(id) = updated {
        return Ok(id);
    }
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
    connection: &mut sqlx::PgConnection,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
    claimed_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<u64> {
    let text = |f: fn(&EndpointRow) -> &Option<String>| -> Vec<Option<&str>> {
        endpoints.iter().map(|e| f(e).as_deref()).collect()
    };
    let addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
    let ports: Vec<i32> = endpoints.iter().map(|e| e.port).collect();
    let netns: Vec<Option<i64>> = endpoints.iter().map(|e| e.netns).collect();
    let done = sqlx::query(
        "INSERT INTO endpoints (address, port, sni, host_id, process, container, netns, app, \
             env, owner, namespace, container_name, first_seen, last_seen, next_probe_at) \
         SELECT u.address, u.port, '', $1, u.process, u.container, u.netns, u.app, u.env, \
             u.owner, u.namespace, u.container_name, $2, $2, $3 \
         FROM UNNEST($4::text[], $5::int4[], $6::text[], $7::text[], $8::int8[], $9::text[], \
             $10::text[], $11::text[], $12::text[], $13::text[]) \
             AS u(address, port, process, container, netns, app, env, owner, namespace, \
                 container_name) \
         ON CONFLICT (address, port, sni) DO UPDATE SET \
             host_id = EXCLUDED.host_id, process = EXCLUDED.process, \
             container = EXCLUDED.container, netns = EXCLUDED.netns, app = EXCLUDED.app, \
             env = EXCLUDED.env, owner = EXCLUDED.owner, namespace = EXCLUDED.namespace, \
             container_name = EXCLUDED.container_name, \
             retired_at = CASE WHEN EXCLUDED.last_seen > endpoints.last_seen THEN NULL \
                 ELSE endpoints.retired_at END, \
             last_seen = EXCLUDED.last_seen, \
             observation_id = CASE WHEN endpoints.host_id <> EXCLUDED.host_id THEN NULL \
                 ELSE endpoints.observation_id END, \
             leaf_sha256 = CASE WHEN endpoints.host_id <> EXCLUDED.host_id THEN NULL \
                 ELSE endpoints.leaf_sha256 END, \
             leaf_not_after = CASE WHEN endpoints.host_id <> EXCLUDED.host_id THEN NULL \
                 ELSE endpoints.leaf_not_after END, \
             failures = CASE WHEN endpoints.host_id <> EXCLUDED.host_id THEN 0 \
                 ELSE endpoints.failures END, \
             next_probe_at = CASE WHEN endpoints.lease_owner IS NULL \
                 AND (endpoints.host_id <> EXCLUDED.host_id \
                     OR (endpoints.failures >= 2 AND endpoints.last_seen < $14)) \
                 THEN $3 ELSE endpoints.next_probe_at END \
         WHERE (endpoints.last_seen < EXCLUDED.last_seen \
             OR (endpoints.last_seen = EXCLUDED.last_seen \
                 AND (endpoints.host_id, endpoints.process, endpoints.container, \
                     endpoints.netns, endpoints.app, endpoints.env, endpoints.owner, \
                     endpoints.namespace, endpoints.container_name) \
                 IS DISTINCT FROM (EXCLUDED.host_id, EXCLUDED.process, EXCLUDED.container, \
                     EXCLUDED.netns, EXCLUDED.app, EXCLUDED.env, EXCLUDED.owner, \
                     EXCLUDED.namespace, EXCLUDED.container_name))) \
             AND (endpoints.host_id IS NULL OR endpoints.host_id = EXCLUDED.host_id \
                 OR endpoints.retired_at IS NOT NULL OR endpoints.last_seen < $14)",
    )
    .bind(host_id)
    .bind(host.seen_at)
    .bind(now)
    .bind(&addresses)
    .bind(&ports)
    .bind(text(|e| &e.process))
    .bind(text(|e| &e.container))
    .bind(&netns)
    .bind(text(|e| &e.app))
    .bind(text(|e| &e.env))
    .bind(text(|e| &e.owner))
    .bind(text(|e| &e.namespace))
    .bind(text(|e| &e.container_name))
    .bind(claimed_before)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// Records this host's claims on the endpoints of `endpoints` that another host holds.
/// Returns how many.
async fn record_claims(
    connection: &mut sqlx::PgConnection,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
) -> Result<u64> {
    let addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
    let ports: Vec<i32> = endpoints.iter().map(|e| e.port).collect();
    let done = sqlx::query(
        "INSERT INTO endpoint_claims (endpoint_id, host_id, first_seen, last_seen) \
         SELECT e.id, $1, $2, $2 FROM UNNEST($3::text[], $4::int4[]) AS u(address, port) \
         JOIN endpoints e ON e.address = u.address AND e.port = u.port AND e.sni = '' \
         WHERE e.host_id <> $1 \
         ON CONFLICT (endpoint_id, host_id) DO UPDATE SET \
             last_seen = GREATEST(endpoint_claims.last_seen, EXCLUDED.last_seen)",
    )
    .bind(host_id)
    .bind(host.seen_at)
    .bind(&addresses)
    .bind(&ports)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// Drops this host's claims on endpoints that are now its own; returns how many.
async fn settle_claims(connection: &mut sqlx::PgConnection, host_id: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM endpoint_claims c USING endpoints e \
         WHERE c.host_id = $1 AND e.id = c.endpoint_id AND e.host_id = $1",
    )
    .bind(host_id)
    .execute(&mut *connection)
    .await?;
    Ok(done.rows_affected())
}

/// An operator's decision on the claims of an endpoint (see `Store::settle_conflict`).
pub(super) async fn settle_conflict(
    pool: &PgPool,
    endpoint: EndpointId,
    to: Option<&str>,
    now: OffsetDateTime,
) -> Result<u64> {
    let mut transaction = pool.begin().await?;
    if let Some(host_key) = to {
        let moved = sqlx::query(
            "UPDATE endpoints e SET host_id = h.id, \
                 app = NULLIF(h.tags ->> 'app', ''), env = NULLIF(h.tags ->> 'env', ''), \
                 owner = NULLIF(h.tags ->> 'owner', ''), \
                 last_seen = GREATEST(e.last_seen, c.last_seen), next_probe_at = $3 \
             FROM endpoint_claims c JOIN hosts h ON h.id = c.host_id \
             WHERE e.id = $1 AND c.endpoint_id = e.id AND h.host_key = $2",
        )
        .bind(endpoint.0)
        .bind(host_key)
        .bind(now)
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
    connection: &mut sqlx::PgConnection,
    endpoints: &[EndpointRow],
    now: OffsetDateTime,
) -> Result<()> {
    let addresses: Vec<&str> = endpoints.iter().map(|e| e.address.as_str()).collect();
    let ports: Vec<i32> = endpoints.iter().map(|e| e.port).collect();
    sqlx::query(
        "UPDATE endpoints n SET host_id = b.host_id, app = b.app, env = b.env, \
             owner = b.owner, namespace = b.namespace, container_name = b.container_name, \
             observation_id = CASE WHEN n.host_id <> b.host_id THEN NULL \
                 ELSE n.observation_id END, \
             leaf_sha256 = CASE WHEN n.host_id <> b.host_id THEN NULL ELSE n.leaf_sha256 END, \
             leaf_not_after = CASE WHEN n.host_id <> b.host_id THEN NULL \
                 ELSE n.leaf_not_after END, \
             next_probe_at = CASE WHEN n.host_id <> b.host_id AND n.lease_owner IS NULL \
                 THEN $3 ELSE n.next_probe_at END \
         FROM UNNEST($1::text[], $2::int4[]) AS u(address, port) \
         JOIN endpoints b ON b.address = u.address AND b.port = u.port AND b.sni = '' \
         WHERE n.address = b.address AND n.port = b.port AND n.sni <> '' \
             AND (n.host_id, n.app, n.env, n.owner, n.namespace, n.container_name) \
                 IS DISTINCT FROM (b.host_id, b.app, b.env, b.owner, b.namespace, \
                     b.container_name)",
    )
    .bind(&addresses)
    .bind(&ports)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
