//! Writing change events into the `events` outbox, set-wise, in the transaction of the
//! change (docs/events.md), and the publisher's reads and marks ([`EventStore`]).
//!
//! Events of endpoint rows (discovered, retired) are derived in SQL from the rows the
//! statement changes; events of a probe batch (first seen, rotated, findings, mTLS) are
//! worked out from the batch in memory and written in one statement per 10,000.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::CHUNK;
use crate::db::{with_arg, Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::events::{EventKind, EventStore, OutboxEvent};
use crate::rows::ReadRow;
use crate::store::SqlStore;

/// An event to write: its kind, the endpoint it is about (its `endpoint` object is read
/// from the endpoint row when written) and its other fields.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub kind: EventKind,
    pub endpoint_id: Option<i64>,
    pub data: serde_json::Value,
}

/// A new event id, in SQL: 32 lowercase hex digits of 128 random bits.
fn event_id(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "replace(gen_random_uuid()::text, '-', '')",
        Dialect::Sqlite => "lower(hex(randomblob(16)))",
    }
}

/// The `endpoint` object of an event, from endpoint columns of table `alias`.
fn endpoint_json(dialect: Dialect, alias: &str) -> String {
    let build = dialect.json_object();
    format!(
        "{build}('id', {alias}.id, 'address', {alias}.address, 'port', {alias}.port, \
         'sni', NULLIF({alias}.sni, ''), 'app', {alias}.app, 'env', {alias}.env, \
         'owner', {alias}.owner)"
    )
}

/// `INSERT INTO events ... SELECT` of one event of `kind` per endpoint row `alias` of
/// `from` (a `FROM ... WHERE ...` clause), at the time bound at `at`.
pub(crate) fn endpoint_events_sql(
    dialect: Dialect,
    kind: EventKind,
    at: &str,
    from: &str,
) -> String {
    let data = format!(
        "{}('endpoint', {})",
        dialect.json_object(),
        endpoint_json(dialect, "e")
    );
    format!(
        "INSERT INTO events (event_id, kind, at, data) \
         SELECT {}, '{}', {at}, {data} {from}",
        event_id(dialect),
        kind.as_str()
    )
}

/// Runs `upsert`, an `INSERT INTO endpoints ...` without `RETURNING`, and, when `events`,
/// writes an `endpoint.discovered` event for each row it inserted (not for those it
/// updated). Returns the rows it wrote. PostgreSQL tells inserted rows by `xmax = 0` in
/// one statement; SQLite, holding the write lock, by an id above the largest before.
pub(crate) async fn upsert_discovering<D: Db>(
    transaction: &mut D::Tx,
    mut upsert: Query,
    events: bool,
    now: OffsetDateTime,
) -> Result<u64> {
    if !events {
        return transaction.execute(&upsert).await;
    }
    let kind = EventKind::EndpointDiscovered;
    match D::DIALECT {
        Dialect::Postgres => {
            let at = upsert.arg(Bind::Time(now));
            let insert = endpoint_events_sql(D::DIALECT, kind, &at, "FROM up e WHERE e.fresh");
            upsert.sql = format!(
                "WITH up AS ({} RETURNING id, address, port, sni, app, env, owner, \
                     (xmax = 0) AS fresh), \
                 discovered AS ({insert}) \
                 SELECT COUNT(*) AS written FROM up",
                upsert.sql
            );
            let rows = transaction.rows(&upsert).await?;
            match rows.first() {
                Some(row) => row.count("written"),
                None => Ok(0),
            }
        }
        Dialect::Sqlite => {
            let top = crate::db::plain("SELECT COALESCE(MAX(id), 0) AS top FROM endpoints");
            let top = match transaction.rows(&top).await?.first() {
                Some(row) => row.int("top")?,
                None => 0,
            };
            let written = transaction.execute(&upsert).await?;
            if written > 0 {
                let mut insert = Query::default();
                let at = insert.arg(Bind::Time(now));
                let top = insert.arg(Bind::Int(top));
                insert.sql = endpoint_events_sql(
                    D::DIALECT,
                    kind,
                    &at,
                    &format!("FROM endpoints e WHERE e.id > {top}"),
                );
                transaction.execute(&insert).await?;
            }
            Ok(written)
        }
    }
}

/// Writes `events`, a statement per 10,000; each with an endpoint gets its `endpoint`
/// object from the endpoint row.
pub(crate) async fn insert_events<D: Db>(
    transaction: &mut D::Tx,
    events: &[NewEvent],
    now: OffsetDateTime,
) -> Result<()> {
    for chunk in events.chunks(CHUNK) {
        let batch = Batch::new(chunk.len())
            .text("kind", chunk, |e| Some(e.kind.as_str()))
            .column("endpoint_id", chunk, |e| e.endpoint_id)
            .column("data", chunk, |e| Some(e.data.to_string()));
        let mut query = Query::default();
        let at = query.arg(Bind::Time(now));
        let source = D::bind_batch(&mut query, batch);
        let endpoint = endpoint_json(D::DIALECT, "e");
        let data = match D::DIALECT {
            Dialect::Postgres => format!(
                "CASE WHEN e.id IS NULL THEN u.data::jsonb \
                 ELSE u.data::jsonb || jsonb_build_object('endpoint', {endpoint}) END"
            ),
            Dialect::Sqlite => format!(
                "CASE WHEN e.id IS NULL THEN json(u.data) \
                 ELSE json_set(u.data, '$.endpoint', {endpoint}) END"
            ),
        };
        query.sql = format!(
            "INSERT INTO events (event_id, kind, at, data) \
             SELECT {}, u.kind, {at}, {data} \
             FROM {source} LEFT JOIN endpoints e ON e.id = u.endpoint_id",
            event_id(D::DIALECT)
        );
        transaction.execute(&query).await?;
    }
    Ok(())
}

/// Rows of published events deleted per statement.
const PRUNE_CHUNK: i64 = 10_000;

#[async_trait]
impl<D: Db> EventStore for SqlStore<D> {
    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>> {
        let query = with_arg(
            "SELECT seq, event_id, kind, at, data FROM events \
             WHERE published_at IS NULL ORDER BY seq LIMIT $1",
            Bind::Int(i64::from(limit)),
        );
        let rows = self.pool().rows(&query).await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let (seq, id) = (row.int("seq")?, row.text("event_id")?);
            let (kind, at, data) = (row.text("kind")?, row.time("at")?, row.json("data")?);
            events.push(OutboxEvent {
                seq,
                id,
                kind,
                at,
                data,
            });
        }
        Ok(events)
    }

    async fn events_published(&self, seqs: &[i64]) -> Result<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let query = Query {
            sql: format!(
                "UPDATE events SET published_at = $2 \
                 WHERE seq {} AND published_at IS NULL",
                D::DIALECT.any("$1")
            ),
            binds: vec![Bind::Ints(seqs.to_vec()), Bind::Time(self.now())],
        };
        self.pool().write(&query).await
    }

    async fn prune_events(&self, older_than: time::Duration) -> Result<u64> {
        let before = self.now() - older_than;
        let mut pruned = 0;
        loop {
            let query = Query {
                sql: "DELETE FROM events WHERE seq IN (SELECT seq FROM events \
                      WHERE published_at IS NOT NULL AND published_at < $1 LIMIT $2)"
                    .into(),
                binds: vec![Bind::Time(before), Bind::Int(PRUNE_CHUNK)],
            };
            let deleted = self.pool().write(&query).await?;
            pruned += deleted;
            if deleted < PRUNE_CHUNK as u64 {
                return Ok(pruned);
            }
        }
    }

    async fn event_backlog(&self) -> Result<u64> {
        let query =
            crate::db::plain("SELECT COUNT(*) AS backlog FROM events WHERE published_at IS NULL");
        match self.pool().rows(&query).await?.first() {
            Some(row) => row.count("backlog"),
            None => Ok(0),
        }
    }
}

/// `INSERT INTO events ... SELECT` of one event of `kind` per notification `n` of `clause`
/// (`WHERE ...` over `notifications n`), with its certificate, at the time bound at `at`;
/// `error` is the SQL of the delivery error (`NULL` when there is none).
pub(crate) fn notification_events_sql(
    dialect: Dialect,
    kind: EventKind,
    at: &str,
    error: &str,
    clause: &str,
) -> String {
    let build = dialect.json_object();
    let not_after = match dialect {
        Dialect::Postgres => {
            "to_char(c.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        }
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%SZ', c.not_after, 'unixepoch')",
    };
    format!(
        "INSERT INTO events (event_id, kind, at, data) \
         SELECT {}, '{}', {at}, {build}( \
             'certificate', {build}('sha256', c.sha256, 'subject', c.subject, \
                 'issuer', c.issuer, 'not_after', {not_after}), \
             'notification', {build}('id', n.id, 'owner', n.owner, \
                 'threshold', n.threshold, 'attempts', n.attempts, 'error', {error})) \
         FROM notifications n JOIN certificates c ON c.sha256 = n.sha256 {clause}",
        event_id(dialect),
        kind.as_str()
    )
}
