//! Recording what probers found: certificates, their names, observations and chains,
//! each endpoint's status and schedule, rotations, and the names to present next.

use std::collections::{HashMap, HashSet};

use certfleet_model::ProbeResult;
use time::OffsetDateTime;

use super::events::insert_events;
use super::probe_events::ProbeChanges;
use super::{named, CHUNK};
use crate::db::{Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::fence::{admitted_results, current_lease, Fence, CURRENT_LEASE_COLUMNS};
use crate::plan::{plan_probes, CertificateRow, EndpointUpdate, ObservationRow};
use crate::records::{EndpointId, Recorded};
use crate::rotation::{rotations, RotationRow};
use crate::rows::ReadRow;
use crate::schedule::ProbeSchedule;

pub(crate) async fn record_probe_results<D: Db>(
    db: &D,
    results: &[(EndpointId, ProbeResult)],
    // `Some`: only results whose lease still holds (ProbeQueue::record_leased_probe_results).
    fence: Option<&Fence<'_>>,
    // `None`: names to present are off (StoreOptions::present_names).
    learnt_names: Option<&[(EndpointId, String)]>,
    schedule: &ProbeSchedule,
    events: bool,
    now: OffsetDateTime,
) -> Result<Recorded> {
    // Checked before any SQL: a malformed result is refused with its batch.
    plan_probes(results)?;
    let mut ids: Vec<i64> = results.iter().map(|(id, _)| id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Recorded::default());
    }
    let mut transaction = db.begin().await?;
    let select = Query {
        sql: format!(
            "SELECT {CURRENT_LEASE_COLUMNS} FROM endpoints e \
             LEFT JOIN observations o ON o.id = e.observation_id \
             WHERE e.id {} ORDER BY e.id{}",
            D::DIALECT.any("$1"),
            D::DIALECT.for_update("e")
        ),
        binds: vec![Bind::Ints(ids.clone())],
    };
    let rows = transaction.rows(&select).await?;
    let rows = rows.iter().map(current_lease).collect::<Result<Vec<_>>>()?;
    let admitted = Fence::admit(fence, &ids, rows);
    let results = admitted_results(results, &admitted);
    let stale = admitted.stale;
    let failures = admitted.failures;
    let leaves = &admitted.leaves;
    let batch = plan_probes(&results)?;
    if batch.outcomes.is_empty() {
        transaction.commit().await?;
        return Ok(Recorded { recorded: 0, stale });
    }
    let mut new_certificates = HashSet::new();
    for chunk in batch.certificates.chunks(CHUNK) {
        new_certificates.extend(upsert_certificates::<D>(&mut transaction, chunk, events).await?);
    }
    for chunk in batch.names.chunks(CHUNK) {
        let names = Batch::new(chunk.len())
            .text("name", chunk, |(name, _)| Some(name.as_str()))
            .text("sha256", chunk, |(_, sha256)| Some(sha256.as_str()));
        let mut query = Query::default();
        let source = D::bind_batch(&mut query, names);
        query.sql = format!(
            "INSERT INTO certificate_names (name, sha256) \
             SELECT u.name, u.sha256 FROM {source} WHERE true ON CONFLICT DO NOTHING"
        );
        transaction.execute(&query).await?;
    }
    let known: Vec<&ObservationRow> = batch
        .observations
        .iter()
        .filter(|o| failures.contains_key(&o.endpoint_id))
        .collect();
    let mut observation_ids = HashMap::new();
    for chunk in known.chunks(CHUNK) {
        observation_ids.extend(upsert_observations::<D>(&mut transaction, chunk).await?);
    }
    let updates: Vec<EndpointUpdate> = batch
        .outcomes
        .iter()
        .filter_map(|outcome| {
            let before = *failures.get(&outcome.endpoint_id)?;
            let observation = outcome.fingerprint.as_ref().and_then(|fingerprint| {
                observation_ids
                    .get(&(outcome.endpoint_id, fingerprint.clone()))
                    .copied()
            });
            Some(outcome.update(before, observation, schedule, now))
        })
        .collect();
    for chunk in updates.chunks(CHUNK) {
        update_endpoints::<D>(&mut transaction, chunk, now - schedule.unreported_after).await?;
    }
    let rotations = rotations(leaves, &updates);
    for chunk in rotations.chunks(CHUNK) {
        insert_rotations::<D>(&mut transaction, chunk).await?;
    }
    if events {
        let new_certificates: Vec<&CertificateRow> = batch
            .certificates
            .iter()
            .filter(|c| new_certificates.contains(&c.sha256))
            .collect();
        let changes = ProbeChanges {
            new_certificates: &new_certificates,
            rotations: &rotations,
            outcomes: &batch.outcomes,
            observations: &batch.observations,
            updates: &updates,
            previous: &admitted.previous,
        };
        insert_events::<D>(&mut transaction, &changes.events(), now).await?;
    }
    // In the same transaction: see crate::sni.
    let probed: Vec<i64> = updates.iter().map(|u| u.id).collect();
    named::retire_default_guesses::<D>(&mut transaction, &probed, now).await?;
    if let Some(learnt_names) = learnt_names {
        let learnt_names: Vec<(EndpointId, String)> = learnt_names
            .iter()
            .filter(|(id, _)| failures.contains_key(&id.0))
            .cloned()
            .collect();
        let recheck_before = now - schedule.interval;
        named::add_named_endpoints::<D>(
            &mut transaction,
            &results,
            &learnt_names,
            now,
            recheck_before,
            events,
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(Recorded {
        recorded: updates.len() as u64,
        stale,
    })
}

/// Inserts new certificates, and moves the times of known ones (or fills a missing PEM or
/// SHA-1). With `events`, returns the SHA-256 of those it inserted.
async fn upsert_certificates<D: Db>(
    transaction: &mut D::Tx,
    rows: &[CertificateRow],
    events: bool,
) -> Result<Vec<String>> {
    let batch = Batch::new(rows.len())
        .text("sha256", rows, |r| Some(r.sha256.as_str()))
        .text("serial", rows, |r| Some(r.serial.as_str()))
        .text("subject", rows, |r| Some(r.subject.as_str()))
        .text("issuer", rows, |r| Some(r.issuer.as_str()))
        .column("not_before", rows, |r| Some(r.not_before))
        .column("not_after", rows, |r| Some(r.not_after))
        .text("sans", rows, |r| Some(r.sans.as_str()))
        .text("key_type", rows, |r| Some(r.key_type.as_str()))
        .column("key_bits", rows, |r| Some(r.key_bits))
        .text("key_curve", rows, |r| r.key_curve.as_deref())
        .column("signature_algorithm", rows, |r| {
            Some(r.signature_algorithm.clone())
        })
        .column("is_ca", rows, |r| Some(r.is_ca))
        .column("self_signed", rows, |r| Some(r.self_signed))
        .text("pem", rows, |r| r.pem.as_deref())
        .column("seen_at", rows, |r| Some(r.seen_at))
        .text("sha1", rows, |r| r.sha1.as_deref());
    let mut inserted = Vec::new();
    if events && D::DIALECT == Dialect::Sqlite {
        // Under the write lock: those not there before the upsert are the ones it inserts.
        let mut query = Query::default();
        let source = D::bind_batch(
            &mut query,
            Batch::new(rows.len()).text("sha256", rows, |r| Some(r.sha256.as_str())),
        );
        query.sql = format!(
            "SELECT u.sha256 FROM {source} WHERE NOT EXISTS \
             (SELECT 1 FROM certificates c WHERE c.sha256 = u.sha256)"
        );
        for row in transaction.rows(&query).await? {
            inserted.push(row.text("sha256")?);
        }
    }
    let mut query = Query::default();
    let source = D::bind_batch(&mut query, batch);
    let columns = "sha256, serial, subject, issuer, not_before, not_after, sans, key_type, \
        key_bits, key_curve, signature_algorithm, is_ca, self_signed, pem, first_seen, \
        last_seen, sha1";
    let values = format!(
        "u.sha256, u.serial, u.subject, u.issuer, u.not_before, u.not_after, {}, \
         u.key_type, u.key_bits, u.key_curve, u.signature_algorithm, u.is_ca, \
         u.self_signed, u.pem, u.seen_at, u.seen_at, u.sha1",
        D::DIALECT.json("u.sans")
    );
    query.sql = match D::DIALECT {
        // Insert new certificates; move an existing one's times only when they change by
        // more than a minute (or fill a missing PEM or SHA-1). A plain upsert locks every
        // row it meets until commit, and the rows every prober meets are the same few: the
        // shared intermediates and wildcard leaves. Probers recording at once then queued
        // behind each other's transactions.
        Dialect::Postgres => format!(
            "WITH u AS (SELECT * FROM {source}), \
             inserted AS ( \
                 INSERT INTO certificates ({columns}) \
                 SELECT {values} FROM u ORDER BY u.sha256 \
                 ON CONFLICT (sha256) DO NOTHING RETURNING sha256), \
             updated AS (UPDATE certificates c SET \
                 first_seen = LEAST(c.first_seen, u.seen_at), \
                 last_seen = GREATEST(c.last_seen, u.seen_at), \
                 pem = COALESCE(c.pem, u.pem), \
                 sha1 = COALESCE(c.sha1, u.sha1) \
             FROM u \
             WHERE c.sha256 = u.sha256 AND (u.seen_at > c.last_seen + interval '1 minute' \
                 OR u.seen_at < c.first_seen OR (c.pem IS NULL AND u.pem IS NOT NULL) \
                 OR (c.sha1 IS NULL AND u.sha1 IS NOT NULL)) RETURNING 1) \
             SELECT sha256 FROM inserted"
        ),
        // One writer at a time: a plain upsert.
        Dialect::Sqlite => format!(
            "INSERT INTO certificates ({columns}) \
             SELECT {values} FROM {source} WHERE true \
             ON CONFLICT (sha256) DO UPDATE SET \
                 first_seen = min(certificates.first_seen, excluded.first_seen), \
                 last_seen = max(certificates.last_seen, excluded.last_seen), \
                 pem = COALESCE(certificates.pem, excluded.pem), \
                 sha1 = COALESCE(certificates.sha1, excluded.sha1)"
        ),
    };
    match D::DIALECT {
        Dialect::Postgres => {
            for row in transaction.rows(&query).await? {
                inserted.push(row.text("sha256")?);
            }
        }
        Dialect::Sqlite => {
            transaction.execute(&query).await?;
        }
    }
    Ok(inserted)
}

/// Inserts new observations and moves last_seen of known ones; returns the ids by
/// (endpoint, fingerprint). Then records the chains of new ones.
async fn upsert_observations<D: Db>(
    transaction: &mut D::Tx,
    rows: &[&ObservationRow],
) -> Result<Vec<((i64, String), i64)>> {
    let dialect = D::DIALECT;
    let batch = Batch::new(rows.len())
        .column("endpoint_id", rows, |r| Some(r.endpoint_id))
        .text("fingerprint", rows, |r| Some(r.fingerprint.as_str()))
        .text("status", rows, |r| Some(r.status))
        .text("leaf_sha256", rows, |r| r.leaf_sha256.as_deref())
        .text("tls_version", rows, |r| r.tls.version.as_deref())
        .text("cipher", rows, |r| r.tls.cipher.as_deref())
        .text("alpn", rows, |r| r.tls.alpn.as_deref())
        .text("tls_group", rows, |r| r.tls.group.as_deref())
        .column("legacy", rows, |r| Some(r.tls.legacy))
        .column("mtls_requested", rows, |r| Some(r.mtls_requested))
        .column("mtls_required", rows, |r| r.mtls_required)
        .text("ca_names", rows, |r| Some(r.ca_names.as_str()))
        .text("findings", rows, |r| Some(r.findings.as_str()))
        .column("seen_at", rows, |r| Some(r.seen_at))
        .column("mtls_enforced", rows, |r| {
            r.mtls_enforced.map(str::to_string)
        });
    let mut query = Query::default();
    let source = D::bind_batch(&mut query, batch);
    query.sql = format!(
        "INSERT INTO observations (endpoint_id, fingerprint, status, leaf_sha256, tls_version, \
             cipher, alpn, tls_group, legacy, mtls_requested, mtls_required, ca_names, \
             findings, first_seen, last_seen, mtls_enforced) \
         SELECT u.endpoint_id, u.fingerprint, u.status, u.leaf_sha256, u.tls_version, \
             u.cipher, u.alpn, u.tls_group, u.legacy, u.mtls_requested, u.mtls_required, \
             {}, {}, u.seen_at, u.seen_at, u.mtls_enforced \
         FROM {source} WHERE true \
         ON CONFLICT (endpoint_id, fingerprint) DO UPDATE SET \
             first_seen = {}, last_seen = {} \
         RETURNING id, endpoint_id, fingerprint",
        dialect.json("u.ca_names"),
        dialect.json("u.findings"),
        dialect.least("observations.first_seen", "excluded.first_seen"),
        dialect.greatest("observations.last_seen", "excluded.last_seen"),
    );
    let mut ids = Vec::new();
    for row in transaction.rows(&query).await? {
        let key = (row.int("endpoint_id")?, row.text("fingerprint")?);
        ids.push((key, row.int("id")?));
    }
    let by_key: HashMap<&(i64, String), i64> = ids.iter().map(|(k, id)| (k, *id)).collect();
    let mut chain: Vec<(i64, i32, String)> = Vec::new();
    for row in rows {
        let Some(id) = by_key.get(&(row.endpoint_id, row.fingerprint.clone())) else {
            continue;
        };
        for (position, certificate) in (0..).zip(&row.chain) {
            chain.push((*id, position, certificate.clone()));
        }
    }
    let batch = Batch::new(chain.len())
        .column("observation_id", &chain, |c| Some(c.0))
        .column("position", &chain, |c| Some(c.1))
        .text("sha256", &chain, |c| Some(c.2.as_str()));
    let mut query = Query::default();
    let source = D::bind_batch(&mut query, batch);
    query.sql = format!(
        "INSERT INTO observation_chain (observation_id, position, sha256) \
         SELECT u.observation_id, u.position, u.sha256 FROM {source} WHERE true \
         ON CONFLICT DO NOTHING"
    );
    transaction.execute(&query).await?;
    Ok(ids)
}

async fn insert_rotations<D: Db>(transaction: &mut D::Tx, rows: &[RotationRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let batch = Batch::new(rows.len())
        .column("endpoint_id", rows, |r| Some(r.endpoint_id))
        .text("old_sha256", rows, |r| Some(r.old_sha256.as_str()))
        .text("new_sha256", rows, |r| Some(r.new_sha256.as_str()))
        .column("old_seen_at", rows, |r| Some(r.old_seen_at))
        .column("new_seen_at", rows, |r| Some(r.new_seen_at))
        .column("latency_ms", rows, |r| Some(r.latency_ms));
    let mut query = Query::default();
    let source = D::bind_batch(&mut query, batch);
    query.sql = format!(
        "INSERT INTO rotations (endpoint_id, old_sha256, new_sha256, old_seen_at, \
             new_seen_at, latency_ms) \
         SELECT u.endpoint_id, u.old_sha256, u.new_sha256, u.old_seen_at, u.new_seen_at, \
             u.latency_ms FROM {source}"
    );
    transaction.execute(&query).await?;
    Ok(())
}

/// Status, schedule and current observation of each probed endpoint; ends its lease.
/// A failing socket its host no longer reports (last reported before `unreported_before`)
/// loses its current observation at its second failure in a row: it no longer serves
/// that certificate (no "still served" mail, not counted).
async fn update_endpoints<D: Db>(
    transaction: &mut D::Tx,
    updates: &[EndpointUpdate],
    unreported_before: OffsetDateTime,
) -> Result<()> {
    let batch = Batch::new(updates.len())
        .column("id", updates, |u| Some(u.id))
        .text("status", updates, |u| Some(u.status))
        .text("error", updates, |u| u.error.as_deref())
        .column("probed_at", updates, |u| Some(u.probed_at))
        .column("failures", updates, |u| Some(u.failures))
        .column("next_probe_at", updates, |u| Some(u.next_probe_at))
        .column("observation_id", updates, |u| u.observation_id)
        .column("keep", updates, |u| Some(u.keep_observation))
        .text("leaf_sha256", updates, |u| u.leaf_sha256.as_deref())
        .column("leaf_not_after", updates, |u| u.leaf_not_after);
    let mut query = Query::default();
    let unreported = query.arg(Bind::Time(unreported_before));
    let source = D::bind_batch(&mut query, batch);
    let keep = format!("u.keep AND NOT (u.failures >= 2 AND e.last_seen < {unreported})");
    query.sql = format!(
        "UPDATE endpoints AS e SET last_status = u.status, last_error = u.error, \
             last_probed_at = u.probed_at, failures = u.failures, \
             next_probe_at = u.next_probe_at, lease_owner = NULL, lease_until = NULL, \
             observation_id = CASE WHEN {keep} THEN e.observation_id \
                 ELSE u.observation_id END, \
             leaf_sha256 = CASE WHEN {keep} THEN e.leaf_sha256 ELSE u.leaf_sha256 END, \
             leaf_not_after = CASE WHEN {keep} THEN e.leaf_not_after \
                 ELSE u.leaf_not_after END \
         FROM {source} \
         WHERE e.id = u.id"
    );
    transaction.execute(&query).await?;
    Ok(())
}
