//! The agent's own probes (`agent.probe_local`), recorded like a prober's: after its report
//! is ingested, each result it carries for one of its own sockets is written on that
//! socket's endpoint, which is marked `probed_by` the host so that no prober leases it.
//!
//! What a host may write about is its own: a loopback listener is stored under the host
//! (address `127.0.0.1%<host id>`, so two hosts' loopbacks never share a row); any other
//! result only lands on an endpoint the host holds (`host_id`), so a result for an address
//! another live host holds is refused like the claim on it was. Every certificate whose
//! PEM the result carries must hash to its `sha256`.

use std::collections::HashMap;

use certfleet_model::{AgentReport, ProbeResult, ProbedSocket, ReportError};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::events::upsert_discovering;
use crate::db::{Batch, Bind, Db, Query, Tx};
use crate::error::Result;
use crate::plan::{der_of_pem, endpoint_row, EndpointRow, MAX_CLOCK_SKEW};
use crate::records::EndpointId;
use crate::rows::ReadRow;
use crate::schedule::ProbeSchedule;
use crate::zones::zone_of;

/// Refusals logged per report: the count says the rest.
const LOGGED_REFUSALS: usize = 5;

/// The host's host-scope endpoints its agent no longer probes go back to the probers, due
/// at once; loopback ones (a `%` in the address) stay the agent's until they retire.
const NOT_LOOPBACK: &str = "address NOT LIKE '%!%%' ESCAPE '!'";

/// What became of a report's `probes`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AgentProbeCounts {
    pub recorded: u64,
    pub refused: u64,
}

/// Records the report's own probes (its host is already stored) and hands the host's
/// endpoints the agent no longer probes back to the probers. A report older than the
/// host's stored one changes nothing here.
pub(crate) async fn record_agent_probes<D: Db>(
    db: &D,
    report: &AgentReport,
    schedule: &ProbeSchedule,
    events: bool,
    now: OffsetDateTime,
) -> Result<AgentProbeCounts> {
    let host_key = report.host_key();
    let checked = report.check_probes();
    let mut refused = checked.refused;
    let mut kept = Vec::with_capacity(checked.kept.len());
    for (index, socket, result) in checked.kept {
        match consistent(result) {
            Ok(()) => kept.push((index, socket, result)),
            Err(message) => refused.push(ReportError {
                field: format!("probes[{index}]"),
                message,
            }),
        }
    }
    let host = Query {
        sql: "SELECT id, collected_at FROM hosts WHERE host_key = $1".into(),
        binds: vec![Bind::Text(host_key.clone())],
    };
    let Some(row) = db.rows(&host).await?.into_iter().next() else {
        return Ok(AgentProbeCounts::default());
    };
    let host_id = row.int("id")?;
    if row.time("collected_at")? > report.collected_at.min(now + MAX_CLOCK_SKEW) {
        // A spooled report delivered after a newer one: its results are older.
        return Ok(AgentProbeCounts::default());
    }
    let seen_at = report.collected_at.min(now);
    let mut transaction = db.begin().await?;
    let loopback: Vec<EndpointRow> = kept
        .iter()
        .filter(|(_, socket, _)| socket.is_loopback())
        .filter_map(|(_, socket, _)| {
            let listener = report.sockets.iter().find(|s| {
                s.address == socket.address && s.port == socket.port && s.address.is_loopback()
            })?;
            // No CIDR applies to a host's own loopback; its zone tag (checked at ingest,
            // which ran first) still names it.
            let zone = zone_of(&[], report.socket_tag(listener, "zone"), listener.address);
            Some(endpoint_row(
                report,
                listener,
                scoped(socket, host_id),
                zone,
            ))
        })
        .collect();
    if !loopback.is_empty() {
        upsert_loopback::<D>(&mut transaction, host_id, &loopback, seen_at, events, now).await?;
    }
    let keys: Vec<(String, i32)> = kept
        .iter()
        .map(|(_, socket, _)| (stored_address(socket, host_id), i32::from(socket.port)))
        .collect();
    let ids = mark_probed::<D>(&mut transaction, host_id, &keys, now).await?;
    transaction.commit().await?;

    let mut results: Vec<(EndpointId, ProbeResult)> = Vec::with_capacity(kept.len());
    for ((index, socket, result), key) in kept.iter().zip(&keys) {
        match ids.get(key) {
            Some(id) => results.push((*id, (*result).clone())),
            None => refused.push(ReportError {
                field: format!("probes[{index}]"),
                message: format!(
                    "{}:{} is not this host's endpoint (another live host holds it)",
                    socket.address, socket.port
                ),
            }),
        }
    }
    for error in refused.iter().take(LOGGED_REFUSALS) {
        tracing::warn!(host = %host_key, field = %error.field, reason = %error.message,
            "agent probe result refused");
    }
    let recorded = if results.is_empty() {
        0
    } else {
        // No names to present: a named endpoint would be leased by a prober, and the
        // agent probes each socket as it is bound.
        super::probes::record_probe_results(db, &results, None, None, schedule, events, now)
            .await?
            .recorded
    };
    Ok(AgentProbeCounts {
        recorded,
        refused: refused.len() as u64,
    })
}

/// A certificate whose PEM is carried must be the one its `sha256` names: else a host
/// could attach another certificate's bytes to a fingerprint.
fn consistent(result: &ProbeResult) -> std::result::Result<(), String> {
    for (position, certificate) in result.chain.iter().enumerate() {
        let sha256 = certificate.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("chain[{position}].sha256: must be 64 hex digits"));
        }
        let Some(pem) = &certificate.pem else {
            continue;
        };
        let matches = der_of_pem(pem).is_some_and(|der| hex::encode(Sha256::digest(der)) == sha256);
        if !matches {
            return Err(format!(
                "chain[{position}].pem: not the certificate of sha256"
            ));
        }
    }
    Ok(())
}

/// `127.0.0.1%42`: a loopback listener of host 42.
fn scoped(socket: &ProbedSocket, host_id: i64) -> String {
    format!("{}%{host_id}", socket.address)
}

fn stored_address(socket: &ProbedSocket, host_id: i64) -> String {
    if socket.is_loopback() {
        scoped(socket, host_id)
    } else {
        socket.address.to_string()
    }
}

/// Creates or refreshes the host's loopback endpoints, agent-probed from the start.
async fn upsert_loopback<D: Db>(
    transaction: &mut D::Tx,
    host_id: i64,
    rows: &[EndpointRow],
    seen_at: OffsetDateTime,
    events: bool,
    now: OffsetDateTime,
) -> Result<u64> {
    let batch = Batch::new(rows.len())
        .text("address", rows, |e| Some(e.address.as_str()))
        .column("port", rows, |e| Some(e.port))
        .text("process", rows, |e| e.process.as_deref())
        .text("container", rows, |e| e.container.as_deref())
        .column("netns", rows, |e| e.netns)
        .tags(rows, |e| &e.tags)
        .text("namespace", rows, |e| e.namespace.as_deref())
        .text("container_name", rows, |e| e.container_name.as_deref());
    let mut query = Query::default();
    let host = query.arg(Bind::Int(host_id));
    let seen = query.arg(Bind::Time(seen_at));
    let due = query.arg(Bind::Time(now));
    let source = D::bind_batch(&mut query, batch);
    query.sql = format!(
        "INSERT INTO endpoints (address, port, sni, host_id, probed_by, process, container, \
             netns, app, env, owner, namespace, container_name, first_seen, last_seen, \
             next_probe_at) \
         SELECT u.address, u.port, '', {host}, {host}, u.process, u.container, u.netns, \
             u.app, u.env, u.owner, u.namespace, u.container_name, {seen}, {seen}, {due} \
         FROM {source} WHERE true \
         ON CONFLICT (address, port, sni) DO UPDATE SET \
             process = excluded.process, container = excluded.container, \
             netns = excluded.netns, app = excluded.app, env = excluded.env, \
             owner = excluded.owner, namespace = excluded.namespace, \
             container_name = excluded.container_name, retired_at = NULL, \
             last_seen = excluded.last_seen, probed_by = excluded.probed_by \
         WHERE endpoints.last_seen <= excluded.last_seen"
    );
    upsert_discovering::<D>(transaction, query, events, now).await
}

/// Marks the host's endpoints among `keys` agent-probed, hands its other host-scope
/// agent-probed endpoints back to the probers (due now), and returns the ids of those
/// marked. An endpoint another host holds is not marked.
async fn mark_probed<D: Db>(
    transaction: &mut D::Tx,
    host_id: i64,
    keys: &[(String, i32)],
    now: OffsetDateTime,
) -> Result<HashMap<(String, i32), EndpointId>> {
    let batch = || {
        Batch::new(keys.len())
            .text("address", keys, |(address, _)| Some(address.as_str()))
            .column("port", keys, |(_, port)| Some(*port))
    };
    let mut release = Query::default();
    let host = release.arg(Bind::Int(host_id));
    let due = release.arg(Bind::Time(now));
    let source = D::bind_batch(&mut release, batch());
    release.sql = format!(
        "UPDATE endpoints SET probed_by = NULL, next_probe_at = {due} \
         WHERE probed_by = {host} AND {NOT_LOOPBACK} AND NOT EXISTS \
             (SELECT 1 FROM {source} WHERE u.address = endpoints.address \
                 AND u.port = endpoints.port)"
    );
    transaction.execute(&release).await?;
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let mut mark = Query::default();
    let host = mark.arg(Bind::Int(host_id));
    let source = D::bind_batch(&mut mark, batch());
    mark.sql = format!(
        "UPDATE endpoints SET probed_by = {host} \
         WHERE host_id = {host} AND retired_at IS NULL AND sni = '' \
             AND probed_by IS NULL AND EXISTS \
             (SELECT 1 FROM {source} WHERE u.address = endpoints.address \
                 AND u.port = endpoints.port)"
    );
    transaction.execute(&mark).await?;
    let mut select = Query::default();
    let host = select.arg(Bind::Int(host_id));
    let source = D::bind_batch(&mut select, batch());
    select.sql = format!(
        "SELECT e.id, e.address, e.port FROM {source} JOIN endpoints e \
             ON e.address = u.address AND e.port = u.port AND e.sni = '' \
         WHERE e.probed_by = {host} AND e.host_id = {host} AND e.retired_at IS NULL"
    );
    let mut ids = HashMap::new();
    for row in transaction.rows(&select).await? {
        let key = (row.text("address")?, row.number::<i32>("port")?);
        ids.insert(key, EndpointId(row.int("id")?));
    }
    Ok(ids)
}
