//! Leasing due endpoints to the probers and recording what they found.

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use sqlx::{Row, SqliteConnection, SqlitePool};
use time::{Duration, OffsetDateTime};

use super::{seconds, write, CHUNK};
use crate::error::Result;
use crate::fence::{admitted_results, current_lease, Fence, CURRENT_LEASE_COLUMNS};
use crate::plan::{plan_probes, CertificateRow, EndpointUpdate, ObservationRow};
use crate::records::{EndpointId, Lease, LeasedEndpoint, Recorded};
use crate::rotation::{rotations, RotationRow};
use crate::rows::leased;
use crate::schedule::ProbeSchedule;

/// One statement under the write lock: pick due endpoints and push their next probe time
/// to the lease deadline.
pub(super) async fn lease_due_endpoints(
    pool: &SqlitePool,
    worker: &str,
    limit: u32,
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let mut transaction = write(pool).await?;
    let rows = sqlx::query(
        "UPDATE endpoints SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
         WHERE id IN (SELECT id FROM endpoints \
             WHERE retired_at IS NULL AND next_probe_at <= $1 \
             ORDER BY next_probe_at LIMIT $2) \
         RETURNING id, address, port, sni, sni_source, starttls, failures, lease_until",
    )
    .bind(seconds(now))
    .bind(i64::from(limit))
    .bind(worker)
    .bind(seconds(now + lease_for))
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    rows.iter().map(leased).collect()
}

/// Leases these endpoints to `worker` until now + `lease_for`, due or not (a confirming
/// probe before a notification): those active and not under another lease right now.
pub(super) async fn lease_endpoints(
    pool: &SqlitePool,
    worker: &str,
    ids: &[EndpointId],
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let mut transaction = write(pool).await?;
    let rows = sqlx::query(
        "UPDATE endpoints SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
         WHERE id IN (SELECT value FROM json_each($1)) AND retired_at IS NULL \
             AND (lease_until IS NULL OR lease_until <= $2) \
         RETURNING id, address, port, sni, sni_source, starttls, failures, lease_until",
    )
    .bind(serde_json::to_string(&ids)?)
    .bind(seconds(now))
    .bind(worker)
    .bind(seconds(now + lease_for))
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    rows.iter().map(leased).collect()
}

pub(super) async fn record_probe_results(
    pool: &SqlitePool,
    results: &[(EndpointId, ProbeResult)],
    // `Some`: only results whose lease still holds (Store::record_leased_probe_results).
    fence: Option<&Fence<'_>>,
    // `None`: names to present are off (StoreOptions::present_names).
    learnt_names: Option<&[(EndpointId, String)]>,
    schedule: &ProbeSchedule,
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
    let mut transaction = write(pool).await?;
    let select = format!(
        "SELECT {CURRENT_LEASE_COLUMNS} FROM endpoints e \
         LEFT JOIN observations o ON o.id = e.observation_id \
         WHERE e.id IN (SELECT value FROM json_each($1))"
    );
    let rows = sqlx::query(&select)
        .bind(serde_json::to_string(&ids)?)
        .fetch_all(&mut *transaction)
        .await?;
    let rows = rows.iter().map(current_lease).collect::<Result<Vec<_>>>()?;
    let admitted = Fence::admit(fence, &ids, rows);
    let results = admitted_results(results, &admitted);
    let stale = admitted.stale;
    let failures = admitted.failures;
    let leaves = admitted.leaves;
    let batch = plan_probes(&results)?;
    if batch.outcomes.is_empty() {
        transaction.commit().await?;
        return Ok(Recorded { recorded: 0, stale });
    }
    for chunk in batch.certificates.chunks(CHUNK) {
        upsert_certificates(&mut transaction, chunk).await?;
    }
    for chunk in batch.names.chunks(CHUNK) {
        sqlx::query(
            "INSERT INTO certificate_names (name, sha256) \
             SELECT j.value ->> 0, j.value ->> 1 FROM json_each($1) AS j WHERE true \
             ON CONFLICT DO NOTHING",
        )
        .bind(serde_json::to_string(chunk)?)
        .execute(&mut *transaction)
        .await?;
    }
    let known: Vec<&ObservationRow> = batch
        .observations
        .iter()
        .filter(|o| failures.contains_key(&o.endpoint_id))
        .collect();
    let mut observation_ids = HashMap::new();
    for chunk in known.chunks(CHUNK) {
        observation_ids.extend(upsert_observations(&mut transaction, chunk).await?);
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
        update_endpoints(&mut transaction, chunk, now - schedule.unreported_after).await?;
    }
    insert_rotations(&mut transaction, &rotations(&leaves, &updates)).await?;
    // In the same transaction: see crate::sni.
    let probed: Vec<i64> = updates.iter().map(|u| u.id).collect();
    super::sni::retire_default_guesses(&mut transaction, &probed, now).await?;
    if let Some(learnt_names) = learnt_names {
        let learnt_names: Vec<(EndpointId, String)> = learnt_names
            .iter()
            .filter(|(id, _)| failures.contains_key(&id.0))
            .cloned()
            .collect();
        let recheck_before = now - schedule.interval;
        super::sni::add_named_endpoints(
            &mut transaction,
            &results,
            &learnt_names,
            now,
            recheck_before,
        )
        .await?;
    }
    transaction.commit().await?;
    Ok(Recorded {
        recorded: updates.len() as u64,
        stale,
    })
}

/// Ends the leases that are still `worker`'s; their endpoints are due at the time given.
pub(super) async fn release_leases(
    pool: &SqlitePool,
    worker: &str,
    leases: &[(Lease, OffsetDateTime)],
) -> Result<u64> {
    let mut released = 0;
    let mut transaction = write(pool).await?;
    for chunk in leases.chunks(CHUNK) {
        let json: Vec<_> = chunk
            .iter()
            .map(|(lease, due)| {
                serde_json::json!([lease.endpoint.0, seconds(lease.until), seconds(*due)])
            })
            .collect();
        let result = sqlx::query(
            "UPDATE endpoints SET lease_owner = NULL, lease_until = NULL, \
                 next_probe_at = u.due \
             FROM (SELECT j.value ->> 0 AS id, j.value ->> 1 AS until, j.value ->> 2 AS due \
                   FROM json_each($2) AS j) AS u \
             WHERE endpoints.id = u.id AND endpoints.lease_owner = $1 \
                 AND endpoints.lease_until = u.until",
        )
        .bind(worker)
        .bind(serde_json::to_string(&json)?)
        .execute(&mut *transaction)
        .await?;
        released += result.rows_affected();
    }
    transaction.commit().await?;
    Ok(released)
}

async fn upsert_certificates(
    connection: &mut SqliteConnection,
    rows: &[CertificateRow],
) -> Result<()> {
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!([
                r.sha256,
                r.serial,
                r.subject,
                r.issuer,
                seconds(r.not_before),
                seconds(r.not_after),
                r.sans,
                r.key_type,
                r.key_bits,
                r.key_curve,
                r.signature_algorithm,
                r.is_ca,
                r.self_signed,
                r.pem,
                seconds(r.seen_at),
                r.sha1,
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO certificates (sha256, serial, subject, issuer, not_before, not_after, \
             sans, key_type, key_bits, key_curve, signature_algorithm, is_ca, self_signed, \
             pem, first_seen, last_seen, sha1) \
         SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, v ->> 5, v ->> 6, v ->> 7, \
             v ->> 8, v ->> 9, v ->> 10, v ->> 11, v ->> 12, v ->> 13, v ->> 14, v ->> 14, \
             v ->> 15 \
         FROM (SELECT value AS v FROM json_each($1)) WHERE true \
         ON CONFLICT (sha256) DO UPDATE SET \
             first_seen = min(certificates.first_seen, excluded.first_seen), \
             last_seen = max(certificates.last_seen, excluded.last_seen), \
             pem = COALESCE(certificates.pem, excluded.pem), \
             sha1 = COALESCE(certificates.sha1, excluded.sha1)",
    )
    .bind(serde_json::to_string(&json)?)
    .execute(connection)
    .await?;
    Ok(())
}

/// Inserts new observations and moves last_seen of known ones; returns the ids by
/// (endpoint, fingerprint). Then records the chains of new ones.
async fn upsert_observations(
    connection: &mut SqliteConnection,
    rows: &[&ObservationRow],
) -> Result<Vec<((i64, String), i64)>> {
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!([
                r.endpoint_id,
                r.fingerprint,
                r.status,
                r.leaf_sha256,
                r.tls_version,
                r.cipher,
                r.alpn,
                r.tls_group,
                r.legacy,
                r.mtls_requested,
                r.mtls_required,
                r.ca_names,
                r.findings,
                seconds(r.seen_at),
                r.mtls_enforced,
            ])
        })
        .collect();
    let returned = sqlx::query(
        "INSERT INTO observations (endpoint_id, fingerprint, status, leaf_sha256, tls_version, \
             cipher, alpn, tls_group, legacy, mtls_requested, mtls_required, ca_names, \
             findings, first_seen, last_seen, mtls_enforced) \
         SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, v ->> 5, v ->> 6, v ->> 7, \
             v ->> 8, v ->> 9, v ->> 10, v ->> 11, v ->> 12, v ->> 13, v ->> 13, v ->> 14 \
         FROM (SELECT value AS v FROM json_each($1)) WHERE true \
         ON CONFLICT (endpoint_id, fingerprint) DO UPDATE SET \
             first_seen = min(observations.first_seen, excluded.first_seen), \
             last_seen = max(observations.last_seen, excluded.last_seen) \
         RETURNING id, endpoint_id, fingerprint",
    )
    .bind(serde_json::to_string(&json)?)
    .fetch_all(&mut *connection)
    .await?;
    let mut ids = Vec::with_capacity(returned.len());
    for row in &returned {
        let key: (i64, String) = (row.try_get("endpoint_id")?, row.try_get("fingerprint")?);
        ids.push((key, row.try_get::<i64, _>("id")?));
    }
    let by_key: HashMap<&(i64, String), i64> = ids.iter().map(|(k, id)| (k, *id)).collect();
    let mut chain_rows = Vec::new();
    for row in rows {
        let Some(id) = by_key.get(&(row.endpoint_id, row.fingerprint.clone())) else {
            continue;
        };
        for (position, certificate) in row.chain.iter().enumerate() {
            chain_rows.push((*id, position, certificate.as_str()));
        }
    }
    sqlx::query(
        "INSERT INTO observation_chain (observation_id, position, sha256) \
         SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM json_each($1) AS j \
         WHERE true ON CONFLICT DO NOTHING",
    )
    .bind(serde_json::to_string(&chain_rows)?)
    .execute(&mut *connection)
    .await?;
    Ok(ids)
}

async fn insert_rotations(connection: &mut SqliteConnection, rows: &[RotationRow]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                serde_json::json!([
                    r.endpoint_id,
                    r.old_sha256,
                    r.new_sha256,
                    seconds(r.old_seen_at),
                    seconds(r.new_seen_at),
                    r.latency_ms
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO rotations (endpoint_id, old_sha256, new_sha256, old_seen_at, \
                 new_seen_at, latency_ms) \
             SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, \
                 j.value ->> 4, j.value ->> 5 FROM json_each($1) AS j",
        )
        .bind(serde_json::to_string(&values)?)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Status, schedule and current observation of each probed endpoint; ends its lease. A
/// failing socket its host no longer reports (last reported before `unreported_before`)
/// loses its current observation at its second failure in a row: it no longer serves that
/// certificate (no "still served" mail, not counted).
async fn update_endpoints(
    connection: &mut SqliteConnection,
    updates: &[EndpointUpdate],
    unreported_before: OffsetDateTime,
) -> Result<()> {
    let json: Vec<_> = updates
        .iter()
        .map(|u| {
            serde_json::json!([
                u.id,
                u.status,
                u.error,
                seconds(u.probed_at),
                u.failures,
                seconds(u.next_probe_at),
                u.observation_id,
                u.keep_observation,
                u.leaf_sha256,
                u.leaf_not_after.map(seconds),
            ])
        })
        .collect();
    sqlx::query(
        "UPDATE endpoints SET last_status = u.status, last_error = u.error, \
             last_probed_at = u.probed_at, failures = u.failures, \
             next_probe_at = u.next_probe_at, lease_owner = NULL, lease_until = NULL, \
             observation_id = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND endpoints.last_seen < $2) THEN endpoints.observation_id \
                 ELSE u.observation_id END, \
             leaf_sha256 = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND endpoints.last_seen < $2) THEN endpoints.leaf_sha256 \
                 ELSE u.leaf_sha256 END, \
             leaf_not_after = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND endpoints.last_seen < $2) THEN endpoints.leaf_not_after \
                 ELSE u.leaf_not_after END \
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS status, value ->> 2 AS error, \
                 value ->> 3 AS probed_at, value ->> 4 AS failures, \
                 value ->> 5 AS next_probe_at, value ->> 6 AS observation_id, \
                 value ->> 7 AS keep, value ->> 8 AS leaf_sha256, \
                 value ->> 9 AS leaf_not_after \
             FROM json_each($1)) AS u \
         WHERE endpoints.id = u.id",
    )
    .bind(serde_json::to_string(&json)?)
    .bind(seconds(unreported_before))
    .execute(connection)
    .await?;
    Ok(())
}
