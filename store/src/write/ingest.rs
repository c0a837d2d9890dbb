//! Reports into hosts and endpoints: one transaction, one statement per 10,000 endpoints.

use certfleet_model::AgentReport;
use time::{Duration, OffsetDateTime};

use super::{events, CHUNK};
use crate::db::{Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::{Error, Result};
use crate::plan::{plan_report, EndpointRow, HostRow};
use crate::records::{AgentName, EndpointId, IngestCounts};
use crate::rows::ReadRow;
use crate::zones::Zone;

/// What one report may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Another host's sighting of an endpoint within this window makes a claim a conflict.
    pub claim_window: Duration,
    /// Active endpoints one host may stand for.
    pub max_endpoints_per_host: u64,
    /// Whether new endpoints write `endpoint.discovered` events.
    pub events: bool,
}

pub(crate) async fn ingest_report<D: Db>(
    db: &D,
    agent: &AgentName,
    report: &AgentReport,
    bounds: Bounds,
    zones: &[Zone],
    now: OffsetDateTime,
) -> Result<IngestCounts> {
    let plan = plan_report(agent, report, zones, now)?;
    let mut transaction = db.begin().await?;
    // A new host, or new tags: the names under its sockets follow (owner, app, env, and a
    // new tenant's fresh start), below.
    let same_tags = Query {
        sql: format!(
            "SELECT {} AS same FROM hosts WHERE host_key = $1",
            D::DIALECT.same_json("tags", "$2")
        ),
        binds: vec![
            Bind::Text(plan.host.key.clone()),
            Bind::Text(plan.host.tags.clone()),
        ],
    };
    let same_tags = match transaction.rows(&same_tags).await?.first() {
        Some(row) => row.opt_bool("same")?,
        None => None,
    };
    let host_id = upsert_host::<D>(&mut transaction, &plan.host).await?;
    let claimed_before = plan.host.seen_at - bounds.claim_window;
    let mut counts = plan.counts;
    for chunk in plan.endpoints.chunks(CHUNK) {
        let written = upsert_endpoints::<D>(
            &mut transaction,
            host_id,
            &plan.host,
            chunk,
            claimed_before,
            bounds.events,
            now,
        )
        .await?;
        if written < chunk.len() as u64 {
            // Some were replays or another live host's: keep the latter as conflicts.
            counts.conflicts +=
                record_claims::<D>(&mut transaction, host_id, &plan.host, chunk).await?;
        }
        if same_tags != Some(true) {
            follow_named::<D>(&mut transaction, chunk, now).await?;
        }
    }
    let settled = transaction
        .execute(&Query {
            sql: "DELETE FROM endpoint_claims WHERE host_id = $1 AND EXISTS \
                  (SELECT 1 FROM endpoints e WHERE e.id = endpoint_claims.endpoint_id \
                      AND e.host_id = $1)"
                .into(),
            binds: vec![Bind::Int(host_id)],
        })
        .await?;
    if settled > 0 && same_tags == Some(true) {
        // Claims settled by taking their endpoints over: their names follow too.
        for chunk in plan.endpoints.chunks(CHUNK) {
            follow_named::<D>(&mut transaction, chunk, now).await?;
        }
    }
    if !plan.endpoints.is_empty() {
        let active = Query {
            sql: "SELECT COUNT(*) AS active FROM endpoints \
                  WHERE host_id = $1 AND retired_at IS NULL AND sni = ''"
                .into(),
            binds: vec![Bind::Int(host_id)],
        };
        let rows = transaction.rows(&active).await?;
        let active = match rows.first() {
            Some(row) => row.number::<u64>("active")?,
            None => 0,
        };
        if active > bounds.max_endpoints_per_host {
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
async fn upsert_host<D: Db>(transaction: &mut D::Tx, host: &HostRow) -> Result<i64> {
    let dialect = D::DIALECT;
    let upsert = Query {
        sql: format!(
            "INSERT INTO hosts (host_key, hostname, machine_id, agent, agent_version, \
                 addresses, tags, collected_at, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5, {}, {}, $8, $9, $9) \
             ON CONFLICT (host_key) DO UPDATE SET \
                 hostname = excluded.hostname, machine_id = excluded.machine_id, \
                 agent = excluded.agent, agent_version = excluded.agent_version, \
                 addresses = excluded.addresses, tags = excluded.tags, \
                 collected_at = excluded.collected_at, \
                 last_seen = {} \
             WHERE hosts.collected_at <= excluded.collected_at \
             RETURNING id",
            dialect.json("$6"),
            dialect.json("$7"),
            dialect.greatest("hosts.last_seen", "excluded.last_seen"),
        ),
        binds: vec![
            Bind::Text(host.key.clone()),
            Bind::Text(host.hostname.clone()),
            Bind::Text(host.machine_id.clone()),
            Bind::Text(host.agent.clone()),
            Bind::Text(host.agent_version.clone()),
            Bind::Text(host.addresses.clone()),
            Bind::Text(host.tags.clone()),
            Bind::Time(host.collected_at),
            Bind::Time(host.seen_at),
        ],
    };
    if let Some(row) = transaction.rows(&upsert).await?.first() {
        return row.int("id");
    }
    let select = Query {
        sql: "SELECT id FROM hosts WHERE host_key = $1".into(),
        binds: vec![Bind::Text(host.key.clone())],
    };
    let rows = transaction.rows(&select).await?;
    rows.first()
        .ok_or(Error::NotFound { what: "host" })?
        .int("id")
}

/// The address and port of each endpoint, as a batch.
fn sockets(endpoints: &[EndpointRow]) -> Batch {
    Batch::new(endpoints.len())
        .text("address", endpoints, |e| Some(e.address.as_str()))
        .column("port", endpoints, |e| Some(e.port))
}

/// Inserts new endpoints (due at once) and refreshes known ones, unless the stored
/// sighting is newer; a replay, which changes nothing, writes nothing. A re-reported
/// retired endpoint comes back.
async fn upsert_endpoints<D: Db>(
    transaction: &mut D::Tx,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
    claimed_before: OffsetDateTime,
    events: bool,
    at: OffsetDateTime,
) -> Result<u64> {
    const WORKLOAD: [&str; 10] = [
        "host_id",
        "zone",
        "process",
        "container",
        "netns",
        "app",
        "env",
        "owner",
        "namespace",
        "container_name",
    ];
    let batch = sockets(endpoints)
        .text("process", endpoints, |e| e.process.as_deref())
        .text("container", endpoints, |e| e.container.as_deref())
        .column("netns", endpoints, |e| e.netns)
        .tags(endpoints, |e| &e.tags)
        .text("namespace", endpoints, |e| e.namespace.as_deref())
        .text("container_name", endpoints, |e| e.container_name.as_deref())
        .text("zone", endpoints, |e| Some(e.zone.as_str()));
    let mut query = Query::default();
    let host_id = query.arg(Bind::Int(host_id));
    let seen = query.arg(Bind::Time(host.seen_at));
    let now = query.arg(Bind::Time(at));
    let claimed = query.arg(Bind::Time(claimed_before));
    let source = D::bind_batch(&mut query, batch);
    let changed = D::DIALECT.distinct("endpoints", "excluded", &WORKLOAD);
    let moved = "endpoints.host_id <> excluded.host_id";
    query.sql = format!(
        "INSERT INTO endpoints (address, port, sni, host_id, process, container, netns, app, \
             env, owner, namespace, container_name, zone, first_seen, last_seen, \
             next_probe_at) \
         SELECT u.address, u.port, '', {host_id}, u.process, u.container, u.netns, u.app, \
             u.env, u.owner, u.namespace, u.container_name, u.zone, {seen}, {seen}, {now} \
         FROM {source} WHERE true \
         ON CONFLICT (address, port, sni) DO UPDATE SET \
             host_id = excluded.host_id, process = excluded.process, \
             container = excluded.container, netns = excluded.netns, app = excluded.app, \
             env = excluded.env, owner = excluded.owner, namespace = excluded.namespace, \
             container_name = excluded.container_name, zone = excluded.zone, \
             retired_at = CASE WHEN excluded.last_seen > endpoints.last_seen THEN NULL \
                 ELSE endpoints.retired_at END, \
             last_seen = excluded.last_seen, \
             observation_id = CASE WHEN {moved} THEN NULL ELSE endpoints.observation_id END, \
             leaf_sha256 = CASE WHEN {moved} THEN NULL ELSE endpoints.leaf_sha256 END, \
             leaf_not_after = CASE WHEN {moved} THEN NULL ELSE endpoints.leaf_not_after END, \
             failures = CASE WHEN {moved} THEN 0 ELSE endpoints.failures END, \
             next_probe_at = CASE WHEN endpoints.lease_owner IS NULL \
                 AND ({moved} \
                     OR (endpoints.failures >= 2 AND endpoints.last_seen < {claimed})) \
                 THEN {now} ELSE endpoints.next_probe_at END \
         WHERE (endpoints.last_seen < excluded.last_seen \
             OR (endpoints.last_seen = excluded.last_seen AND {changed})) \
             AND (endpoints.host_id IS NULL OR endpoints.host_id = excluded.host_id \
                 OR endpoints.retired_at IS NOT NULL OR endpoints.last_seen < {claimed})"
    );
    events::upsert_discovering::<D>(transaction, query, events, at).await
}

/// Records this host's claims on the endpoints of `endpoints` that another host holds.
/// Returns how many.
async fn record_claims<D: Db>(
    transaction: &mut D::Tx,
    host_id: i64,
    host: &HostRow,
    endpoints: &[EndpointRow],
) -> Result<u64> {
    let mut query = Query::default();
    let host_id = query.arg(Bind::Int(host_id));
    let seen = query.arg(Bind::Time(host.seen_at));
    let source = D::bind_batch(&mut query, sockets(endpoints));
    query.sql = format!(
        "INSERT INTO endpoint_claims (endpoint_id, host_id, first_seen, last_seen) \
         SELECT e.id, {host_id}, {seen}, {seen} FROM {source} \
         JOIN endpoints e ON e.address = u.address AND e.port = u.port AND e.sni = '' \
         WHERE e.host_id <> {host_id} \
         ON CONFLICT (endpoint_id, host_id) DO UPDATE SET last_seen = {}",
        D::DIALECT.greatest("endpoint_claims.last_seen", "excluded.last_seen")
    );
    transaction.execute(&query).await
}

/// An operator's decision on the claims of an endpoint (see `IngestStore::settle_conflict`).
pub(crate) async fn settle_conflict<D: Db>(
    db: &D,
    endpoint: EndpointId,
    to: Option<&str>,
    now: OffsetDateTime,
) -> Result<u64> {
    let mut transaction = db.begin().await?;
    if let Some(host_key) = to {
        let tag = |name: &str| match D::DIALECT {
            Dialect::Postgres => format!("NULLIF(h.tags ->> '{name}', '')"),
            Dialect::Sqlite => format!("NULLIF(json_extract(h.tags, '$.{name}'), '')"),
        };
        let moved = Query {
            sql: format!(
                "UPDATE endpoints AS e SET host_id = h.id, app = {}, env = {}, owner = {}, \
                     last_seen = {}, next_probe_at = $3 \
                 FROM endpoint_claims c JOIN hosts h ON h.id = c.host_id \
                 WHERE e.id = $1 AND c.endpoint_id = e.id AND h.host_key = $2",
                tag("app"),
                tag("env"),
                tag("owner"),
                D::DIALECT.greatest("e.last_seen", "c.last_seen"),
            ),
            binds: vec![
                Bind::Int(endpoint.0),
                Bind::Text(host_key.into()),
                Bind::Time(now),
            ],
        };
        if transaction.execute(&moved).await? == 0 {
            return Err(Error::NotFound { what: "claim" });
        }
    }
    let delete = Query {
        sql: "DELETE FROM endpoint_claims WHERE endpoint_id = $1".into(),
        binds: vec![Bind::Int(endpoint.0)],
    };
    let removed = transaction.execute(&delete).await?;
    if removed == 0 {
        return Err(Error::NotFound { what: "claim" });
    }
    transaction.commit().await?;
    Ok(removed)
}

/// The named endpoints (SNI variants) under the sockets of `endpoints` take their socket's
/// host, app, env and owner; under a new host (the socket changed hands) they also lose
/// the previous tenant's observation and are due at once, like the socket itself.
async fn follow_named<D: Db>(
    transaction: &mut D::Tx,
    endpoints: &[EndpointRow],
    now: OffsetDateTime,
) -> Result<()> {
    const FOLLOWED: [&str; 7] = [
        "host_id",
        "zone",
        "app",
        "env",
        "owner",
        "namespace",
        "container_name",
    ];
    let mut query = Query::default();
    let now = query.arg(Bind::Time(now));
    let source = D::bind_batch(&mut query, sockets(endpoints));
    let changed = D::DIALECT.distinct("n", "b", &FOLLOWED);
    let moved = "n.host_id <> b.host_id";
    query.sql = format!(
        "UPDATE endpoints AS n SET host_id = b.host_id, app = b.app, env = b.env, \
             owner = b.owner, namespace = b.namespace, container_name = b.container_name, \
             zone = b.zone, \
             observation_id = CASE WHEN {moved} THEN NULL ELSE n.observation_id END, \
             leaf_sha256 = CASE WHEN {moved} THEN NULL ELSE n.leaf_sha256 END, \
             leaf_not_after = CASE WHEN {moved} THEN NULL ELSE n.leaf_not_after END, \
             next_probe_at = CASE WHEN {moved} AND n.lease_owner IS NULL \
                 THEN {now} ELSE n.next_probe_at END \
         FROM (SELECT e.address, e.port, e.host_id, e.app, e.env, e.owner, e.namespace, \
                 e.container_name, e.zone \
             FROM {source} JOIN endpoints e ON e.address = u.address AND e.port = u.port \
                 AND e.sni = '') AS b \
         WHERE n.address = b.address AND n.port = b.port AND n.sni <> '' AND {changed}"
    );
    transaction.execute(&query).await?;
    Ok(())
}
