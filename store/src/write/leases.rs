//! Leasing endpoints to probers, operators' requests to probe one now, handing leases
//! back, and retiring what no report mentions any more. The lease statements are each backend's own: PostgreSQL locks the
//! rows it takes with `FOR UPDATE SKIP LOCKED` (other leasers pass them by), SQLite runs
//! the statement under its write lock.

use time::{Duration, OffsetDateTime};

use super::events::endpoint_events_sql;
use super::CHUNK;
use crate::db::{with_arg, Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::events::EventKind;
use crate::records::{EndpointId, Lease, LeasedEndpoint, ProbeRequest};
use crate::rows::{leased, ReadRow};

/// Endpoints their host's own agent probes (`agent.probe_local`) are never leased: the
/// agent's results come with its reports, and a loopback one's address (`127.0.0.1%<host
/// id>`) is no address a prober could reach.
const NOT_AGENT_PROBED: &str = "probed_by IS NULL";

/// The columns of a leased endpoint, as [`leased`] reads them.
const LEASED: &str = "id, address, port, sni, sni_source, starttls, failures, lease_until";

/// One statement: take up to `count` due endpoints of `zones` (empty: of every zone) and
/// push their next probe time to the lease deadline.
pub(crate) async fn lease_due_endpoints<D: Db>(
    db: &D,
    worker: &str,
    zones: &[String],
    count: u32,
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let mut binds = vec![
        Bind::Time(now),
        Bind::Int(i64::from(count)),
        Bind::Text(worker.into()),
        Bind::Time(now + lease_for),
    ];
    // What "due" means, once for every form of the statement.
    let due = format!("retired_at IS NULL AND next_probe_at <= $1 AND {NOT_AGENT_PROBED}");
    let lease = "lease_owner = $3, lease_until = $4, next_probe_at = $4";
    let sql = match (D::DIALECT, zones.is_empty()) {
        // Every zone: one range of the plain due index.
        (Dialect::Postgres, true) => format!(
            "WITH due AS ( \
                 SELECT id FROM endpoints WHERE {due} \
                 ORDER BY next_probe_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE endpoints e SET {lease} \
             FROM due WHERE e.id = due.id RETURNING {}",
            qualified("e", LEASED)
        ),
        // Some zones: one range of the (zone, next_probe_at) index per zone, the oldest
        // first over all of them. (`zone = ANY(...)` on the due index instead skips more
        // and more rows of the other zones as a zone's queue drains: 4 times slower in
        // bench/zones-lease.sh.) Rows locked in a zone but not taken are free again when
        // the statement commits.
        (Dialect::Postgres, false) => {
            binds.push(Bind::Texts(zones.to_vec()));
            format!(
                "WITH due AS ( \
                     SELECT d.id FROM unnest($5::text[]) AS z(name), LATERAL ( \
                         SELECT id, next_probe_at FROM endpoints \
                         WHERE zone = z.name AND {due} \
                         ORDER BY next_probe_at LIMIT $2 FOR UPDATE SKIP LOCKED) d \
                     ORDER BY d.next_probe_at LIMIT $2) \
                 UPDATE endpoints e SET {lease} \
                 FROM due WHERE e.id = due.id RETURNING {}",
                qualified("e", LEASED)
            )
        }
        (Dialect::Sqlite, every_zone) => {
            let in_zones = if every_zone {
                String::new()
            } else {
                binds.push(Bind::Texts(zones.to_vec()));
                format!(" AND zone {}", D::DIALECT.any("$5"))
            };
            format!(
                "UPDATE endpoints SET {lease} \
                 WHERE id IN (SELECT id FROM endpoints WHERE {due}{in_zones} \
                     ORDER BY next_probe_at LIMIT $2) \
                 RETURNING {LEASED}"
            )
        }
    };
    let query = Query { sql, binds };
    db.write_rows(&query).await?.iter().map(leased).collect()
}

/// Leases these endpoints to `worker` until now + `lease_for`, due or not (a confirming
/// probe before a notification): those active and not under another lease right now.
pub(crate) async fn lease_endpoints<D: Db>(
    db: &D,
    worker: &str,
    ids: &[EndpointId],
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let free = format!(
        "retired_at IS NULL AND {NOT_AGENT_PROBED} \
         AND (lease_until IS NULL OR lease_until <= $2)"
    );
    let sql = match D::DIALECT {
        Dialect::Postgres => format!(
            "WITH free AS ( \
                 SELECT id FROM endpoints WHERE id = ANY($1) AND {free} \
                 ORDER BY id FOR UPDATE SKIP LOCKED) \
             UPDATE endpoints e SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
             FROM free WHERE e.id = free.id RETURNING {}",
            qualified("e", LEASED)
        ),
        Dialect::Sqlite => format!(
            "UPDATE endpoints SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
             WHERE id IN (SELECT value FROM json_each($1)) AND {free} \
             RETURNING {LEASED}"
        ),
    };
    let query = Query {
        sql,
        binds: vec![
            Bind::Ints(ids),
            Bind::Time(now),
            Bind::Text(worker.into()),
            Bind::Time(now + lease_for),
        ],
    };
    db.write_rows(&query).await?.iter().map(leased).collect()
}

/// How far ahead of the schedule a requested endpoint is put: its `next_probe_at` is the
/// request time less this, so the lease (oldest `next_probe_at` first) takes it before
/// every endpoint the schedule made due, requests among themselves first come, first
/// served. Until a prober leases it (seconds), that is the time the endpoint shows.
const AHEAD_OF_SCHEDULE: Duration = Duration::days(3650);

/// One statement: the endpoint is due ahead of the schedule, unless it is retired or was
/// asked for within `window`. Then, when nothing changed, one read says which.
pub(crate) async fn request_probe(
    db: &impl Db,
    id: EndpointId,
    window: Duration,
    now: OffsetDateTime,
) -> Result<ProbeRequest> {
    let request = Query {
        sql: "UPDATE endpoints SET next_probe_at = $2, probe_requested_at = $1 \
              WHERE id = $3 AND retired_at IS NULL AND probed_by IS NULL \
                AND (probe_requested_at IS NULL OR probe_requested_at <= $4)"
            .into(),
        binds: vec![
            Bind::Time(now),
            Bind::Time(now - AHEAD_OF_SCHEDULE),
            Bind::Int(id.0),
            Bind::Time(now - window),
        ],
    };
    if db.write(&request).await? == 1 {
        return Ok(ProbeRequest::Requested { at: now });
    }
    let query = with_arg(
        "SELECT e.probe_requested_at, e.probed_by, h.hostname FROM endpoints e \
         LEFT JOIN hosts h ON h.id = e.probed_by WHERE e.id = $1 AND e.retired_at IS NULL",
        Bind::Int(id.0),
    );
    let row = db.row(&query, "endpoint").await?;
    if row.opt_int("probed_by")?.is_some() {
        let hostname = row.opt_text("hostname")?.unwrap_or_default();
        return Ok(ProbeRequest::ProbedByAgent { hostname });
    }
    // Asked for by another request between the two statements, at the latest now.
    let last = row.opt_time("probe_requested_at")?.unwrap_or(now);
    Ok(ProbeRequest::Limited {
        retry_after: (last + window - now).max(Duration::SECOND),
    })
}

/// `e.a, e.b, ...` for the columns `a, b, ...`.
fn qualified(table: &str, columns: &str) -> String {
    let columns: Vec<String> = columns
        .split(", ")
        .map(|column| format!("{table}.{column}"))
        .collect();
    columns.join(", ")
}

/// Ends the leases that are still `worker`'s; their endpoints are due at the time given.
pub(crate) async fn release_leases<D: Db>(
    db: &D,
    worker: &str,
    leases: &[(Lease, OffsetDateTime)],
) -> Result<u64> {
    let mut released = 0;
    let mut transaction = db.begin().await?;
    for chunk in leases.chunks(CHUNK) {
        let batch = Batch::new(chunk.len())
            .column("id", chunk, |(lease, _)| Some(lease.endpoint.0))
            .column("until", chunk, |(lease, _)| Some(lease.until))
            .column("due", chunk, |(_, due)| Some(*due));
        let mut query = Query::default();
        let worker = query.arg(Bind::Text(worker.into()));
        let source = D::bind_batch(&mut query, batch);
        query.sql = format!(
            "UPDATE endpoints AS e SET lease_owner = NULL, lease_until = NULL, \
                 next_probe_at = u.due \
             FROM {source} \
             WHERE e.id = u.id AND e.lease_owner = {worker} AND e.lease_until = u.until"
        );
        released += transaction.execute(&query).await?;
    }
    transaction.commit().await?;
    Ok(released)
}

pub(crate) async fn retire_endpoints<D: Db>(
    db: &D,
    now: OffsetDateTime,
    older_than: Duration,
    events: bool,
) -> Result<u64> {
    let retire = Query {
        sql: "UPDATE endpoints SET retired_at = $1, lease_owner = NULL, lease_until = NULL \
              WHERE retired_at IS NULL AND last_seen < $2"
            .into(),
        binds: vec![Bind::Time(now), Bind::Time(now - older_than)],
    };
    if !events {
        return db.write(&retire).await;
    }
    let kind = EventKind::EndpointRetired;
    if D::DIALECT == Dialect::Postgres {
        // One statement: the events of exactly the rows it retires.
        let insert = endpoint_events_sql(D::DIALECT, kind, "$1", "FROM retired e");
        let query = Query {
            sql: format!(
                "WITH retired AS ({} RETURNING id, address, port, sni, app, env, owner), \
                 retired_events AS ({insert}) \
                 SELECT COUNT(*) AS retired FROM retired",
                retire.sql
            ),
            binds: retire.binds,
        };
        return match db.write_rows(&query).await?.first() {
            Some(row) => row.count("retired"),
            None => Ok(0),
        };
    }
    // SQLite holds the write lock: the events of the rows about to retire, then the
    // retirement, in one transaction.
    let mut transaction = db.begin().await?;
    let events = Query {
        sql: endpoint_events_sql(
            D::DIALECT,
            kind,
            "$1",
            "FROM endpoints e WHERE e.retired_at IS NULL AND e.last_seen < $2",
        ),
        binds: retire.binds.clone(),
    };
    transaction.execute(&events).await?;
    let retired = transaction.execute(&retire).await?;
    transaction.commit().await?;
    Ok(retired)
}
