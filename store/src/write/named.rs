//! Named endpoints: see [`crate::sni`]. Adding them is a statement each backend writes
//! its own way (PostgreSQL must not lock rows it does not change, see below).

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use time::OffsetDateTime;

use super::events::{endpoint_events_sql, upsert_discovering};
use crate::db::{Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::events::EventKind;
use crate::records::EndpointId;
use crate::rows::ReadRow;
use crate::sni::{names_to_present, NAMES_PER_ENDPOINT};

/// Creates the `(address, port, name)` endpoints the results reveal, due at `now`, with
/// the workload fields of the endpoint they came from; an existing one only has its
/// `last_seen` carried forward (so it retires with the endpoint that names it). A new one is
/// in its parent's zone (same address, same workload).
/// Each carries its [`NameSource`](crate::NameSource); a guessed one met again from a source
/// that is not a guess takes that source. A guessed one retired after `recheck_before` (for
/// selecting the default certificate, see [`retire_default_guesses`]) stays retired; an
/// older retirement ends and the endpoint is due at once, to be checked again.
/// Returns the endpoints created or carried forward.
pub(super) async fn add_named_endpoints<D: Db>(
    transaction: &mut D::Tx,
    results: &[(EndpointId, ProbeResult)],
    learnt: &[(EndpointId, String)],
    at: OffsetDateTime,
    recheck_before: OffsetDateTime,
    events: bool,
) -> Result<u64> {
    let ids: Vec<i64> = results.iter().map(|(id, _)| id.0).collect();
    let hosts = Query {
        sql: format!(
            "SELECT e.id, h.hostname FROM endpoints e JOIN hosts h ON h.id = e.host_id \
             WHERE e.id {}",
            D::DIALECT.any("$1")
        ),
        binds: vec![Bind::Ints(ids)],
    };
    let hostnames: HashMap<i64, String> = transaction
        .rows(&hosts)
        .await?
        .iter()
        .map(|row| Ok((row.int("id")?, row.text("hostname")?)))
        .collect::<Result<_>>()?;
    let triples = names_to_present(results, &hostnames, learnt);
    if triples.is_empty() {
        return Ok(0);
    }
    let batch = Batch::new(triples.len())
        .column("parent", &triples, |t| Some(t.0))
        .text("name", &triples, |t| Some(t.1.as_str()))
        .text("source", &triples, |t| Some(t.2.as_str()));
    let mut query = Query::default();
    let now = query.arg(Bind::Time(at));
    let limit = query.arg(Bind::Int(NAMES_PER_ENDPOINT as i64));
    let recheck = query.arg(Bind::Time(recheck_before));
    let source = D::bind_batch(&mut query, batch);
    let discovered = if events {
        let kind = EventKind::EndpointDiscovered;
        let insert = endpoint_events_sql(D::DIALECT, kind, &now, "FROM inserted e");
        format!(", discovered AS ({insert})")
    } else {
        String::new()
    };
    query.sql = match D::DIALECT {
        // Existing named endpoints are only updated when their `last_seen` must move (and
        // so only then locked): an upsert (ON CONFLICT DO UPDATE) locks every row it
        // meets, and two probers recording at once each hold the rows the other wants to
        // name, which deadlocked them (the losing transaction retried after a pause) in
        // the scale-out benchmark.
        Dialect::Postgres => format!(
            "WITH wanted AS ( \
                 SELECT DISTINCT ON (p.address, p.port, u.name) p.address, p.port, \
                     u.name AS sni, u.source AS sni_source, \
                     u.source IN ('host_name', 'ptr') AS guessed, p.host_id, p.process, \
                     p.container, p.netns, p.app, p.env, p.owner, p.namespace, \
                     p.container_name, p.starttls, p.zone, p.last_seen \
                 FROM {source} \
                 JOIN endpoints p ON p.id = u.parent \
                 WHERE p.retired_at IS NULL \
                 ORDER BY p.address, p.port, u.name, u.source IN ('host_name', 'ptr'), \
                     p.last_seen DESC), \
             carried AS ( \
                 UPDATE endpoints e SET last_seen = GREATEST(e.last_seen, w.last_seen), \
                     sni_source = CASE WHEN e.sni_source IN ('host_name', 'ptr') \
                         AND NOT w.guessed THEN w.sni_source ELSE e.sni_source END, \
                     retired_at = CASE WHEN e.retired_at > {recheck} AND w.guessed \
                         AND e.sni_source IN ('host_name', 'ptr') THEN e.retired_at END, \
                     next_probe_at = CASE WHEN e.retired_at IS NOT NULL \
                         AND NOT (e.retired_at > {recheck} \
                             AND w.guessed AND e.sni_source IN ('host_name', 'ptr')) \
                         THEN {now} ELSE e.next_probe_at END \
                 FROM wanted w \
                 WHERE e.address = w.address AND e.port = w.port AND e.sni = w.sni \
                     AND (e.last_seen < w.last_seen OR e.retired_at IS NOT NULL \
                         OR (e.sni_source IN ('host_name', 'ptr') AND NOT w.guessed)) \
                 RETURNING 1), \
             inserted AS ( \
                 INSERT INTO endpoints (address, port, sni, sni_source, host_id, process, \
                     container, netns, app, env, owner, namespace, container_name, starttls, \
                     zone, first_seen, last_seen, next_probe_at) \
                 SELECT w.address, w.port, w.sni, w.sni_source, w.host_id, w.process, \
                     w.container, w.netns, w.app, w.env, w.owner, w.namespace, \
                     w.container_name, w.starttls, w.zone, {now}, w.last_seen, {now} \
                 FROM wanted w \
                 WHERE (SELECT count(*) FROM endpoints s \
                     WHERE s.address = w.address AND s.port = w.port AND s.sni <> '') \
                     < {limit} \
                 ORDER BY w.address, w.port, w.sni \
                 ON CONFLICT (address, port, sni) DO NOTHING \
                 RETURNING id, address, port, sni, app, env, owner){discovered} \
             SELECT (SELECT count(*) FROM carried) + (SELECT count(*) FROM inserted) \
                 AS touched"
        ),
        // One writer at a time: an upsert, the guesses last so that a name met from a
        // source that is not a guess is written with that source.
        Dialect::Sqlite => format!(
            "INSERT INTO endpoints (address, port, sni, sni_source, host_id, process, \
                 container, netns, app, env, owner, namespace, container_name, starttls, \
                 zone, first_seen, last_seen, next_probe_at) \
             SELECT p.address, p.port, u.name, u.source, p.host_id, p.process, \
                 p.container, p.netns, p.app, p.env, p.owner, p.namespace, p.container_name, \
                 p.starttls, p.zone, {now}, p.last_seen, {now} \
             FROM {source} JOIN endpoints p ON p.id = u.parent \
             WHERE p.retired_at IS NULL AND (SELECT count(*) FROM endpoints s \
                 WHERE s.address = p.address AND s.port = p.port AND s.sni <> '') < {limit} \
             ORDER BY u.source IN ('host_name', 'ptr') DESC \
             ON CONFLICT (address, port, sni) DO UPDATE SET \
                 last_seen = max(endpoints.last_seen, excluded.last_seen), \
                 sni_source = CASE WHEN endpoints.sni_source IN ('host_name', 'ptr') \
                     AND excluded.sni_source NOT IN ('host_name', 'ptr') \
                     THEN excluded.sni_source ELSE endpoints.sni_source END, \
                 retired_at = CASE WHEN endpoints.retired_at > {recheck} \
                     AND endpoints.sni_source IN ('host_name', 'ptr') \
                     AND excluded.sni_source IN ('host_name', 'ptr') \
                     THEN endpoints.retired_at END, \
                 next_probe_at = CASE WHEN endpoints.retired_at IS NOT NULL \
                     AND NOT (endpoints.retired_at > {recheck} \
                         AND endpoints.sni_source IN ('host_name', 'ptr') \
                         AND excluded.sni_source IN ('host_name', 'ptr')) \
                     THEN {now} ELSE endpoints.next_probe_at END \
             WHERE endpoints.last_seen < excluded.last_seen \
                 OR endpoints.retired_at IS NOT NULL \
                 OR (endpoints.sni_source IN ('host_name', 'ptr') \
                     AND excluded.sni_source NOT IN ('host_name', 'ptr'))"
        ),
    };
    match D::DIALECT {
        Dialect::Postgres => {
            let rows = transaction.rows(&query).await?;
            rows.first().map_or(Ok(0), |row| row.number("touched"))
        }
        Dialect::Sqlite => upsert_discovering::<D>(transaction, query, events, at).await,
    }
}

/// Retires the guessed-name endpoints among `ids` (host name, PTR name) whose current leaf
/// is the one their socket serves without SNI (`(address, port, '')`): the name selects
/// the default certificate, so it adds nothing but a second count of the socket. Run in
/// the recording transaction, after the endpoints' leaves are updated. Returns how many.
pub(super) async fn retire_default_guesses<D: Db>(
    transaction: &mut D::Tx,
    ids: &[i64],
    now: OffsetDateTime,
) -> Result<u64> {
    let query = Query {
        sql: format!(
            "UPDATE endpoints AS e SET retired_at = $2, lease_owner = NULL, lease_until = NULL \
             WHERE e.id {} AND e.retired_at IS NULL AND e.sni <> '' \
                 AND e.sni_source IN ('host_name', 'ptr') AND e.leaf_sha256 IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM endpoints d WHERE d.address = e.address \
                     AND d.port = e.port AND d.sni = '' AND d.leaf_sha256 = e.leaf_sha256)",
            D::DIALECT.any("$1")
        ),
        binds: vec![Bind::Ints(ids.to_vec()), Bind::Time(now)],
    };
    transaction.execute(&query).await
}
