//! Leasing due endpoints to probers and recording what they found.

use std::collections::HashMap;

use certfleet_model::ProbeResult;
use sqlx::{PgConnection, PgPool, Row};
use time::{Duration, OffsetDateTime};

use super::{limit, CHUNK};
use crate::error::Result;
use crate::fence::{admitted_results, current_lease, Fence, CURRENT_LEASE_COLUMNS};
use crate::plan::{plan_probes, CertificateRow, EndpointUpdate, ObservationRow};
use crate::records::{EndpointId, Lease, LeasedEndpoint, Recorded};
use crate::rotation::{rotations, RotationRow};
use crate::rows::leased;
use crate::schedule::ProbeSchedule;

/// One statement: lock due rows other transactions have not locked, and push their
/// next probe time to the lease deadline.
pub(super) async fn lease_due_endpoints(
    pool: &PgPool,
    worker: &str,
    count: u32,
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let lease_until = now + lease_for;
    let rows = sqlx::query(
        "WITH due AS ( \
             SELECT id FROM endpoints \
             WHERE retired_at IS NULL AND next_probe_at <= $1 \
             ORDER BY next_probe_at \
             LIMIT $2 \
             FOR UPDATE SKIP LOCKED) \
         UPDATE endpoints e SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
         FROM due WHERE e.id = due.id \
         RETURNING e.id, e.address, e.port, e.sni, e.sni_source, e.starttls, e.failures, \
             e.lease_until",
    )
    .bind(now)
    .bind(limit(count))
    .bind(worker)
    .bind(lease_until)
    .fetch_all(pool)
    .await?;
    rows.iter().map(leased).collect()
}

/// Leases these endpoints to `worker` until now + `lease_for`, due or not (a confirming
/// probe before a notification): those active and not under another lease right now.
pub(super) async fn lease_endpoints(
    pool: &PgPool,
    worker: &str,
    ids: &[EndpointId],
    lease_for: Duration,
    now: OffsetDateTime,
) -> Result<Vec<LeasedEndpoint>> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let lease_until = now + lease_for;
    let rows = sqlx::query(
        "WITH free AS ( \
             SELECT id FROM endpoints \
             WHERE id = ANY($1) AND retired_at IS NULL \
                 AND (lease_until IS NULL OR lease_until <= $2) \
             ORDER BY id FOR UPDATE SKIP LOCKED) \
         UPDATE endpoints e SET lease_owner = $3, lease_until = $4, next_probe_at = $4 \
         FROM free WHERE e.id = free.id \
         RETURNING e.id, e.address, e.port, e.sni, e.sni_source, e.starttls, e.failures, \
             e.lease_until",
    )
    .bind(&ids)
    .bind(now)
    .bind(worker)
    .bind(lease_until)
    .fetch_all(pool)
    .await?;
    rows.iter().map(leased).collect()
}

pub(super) async fn record_probe_results(
    pool: &PgPool,
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
    let mut transaction = pool.begin().await?;
    let select = format!(
        "SELECT {CURRENT_LEASE_COLUMNS} FROM endpoints e \
         LEFT JOIN observations o ON o.id = e.observation_id \
         WHERE e.id = ANY($1) ORDER BY e.id FOR UPDATE OF e"
    );
    let rows = sqlx::query(&select)
        .bind(&ids)
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
        let (names, hashes): (Vec<&str>, Vec<&str>) =
            chunk.iter().map(|(n, h)| (n.as_str(), h.as_str())).unzip();
        sqlx::query(
            "INSERT INTO certificate_names (name, sha256) \
             SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&names)
        .bind(&hashes)
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
    update_endpoints(&mut transaction, &updates, now - schedule.unreported_after).await?;
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

async fn upsert_certificates(connection: &mut PgConnection, rows: &[CertificateRow]) -> Result<()> {
    let column = |f: fn(&CertificateRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let times = |f: fn(&CertificateRow) -> OffsetDateTime| rows.iter().map(f).collect::<Vec<_>>();
    // Insert new certificates; move an existing one's times only when they change by more
    // than a minute (or fill a missing PEM or SHA-1). A plain upsert locks every row it
    // meets until commit, and the rows every prober meets are the same few: the shared
    // intermediates and wildcard leaves. Probers recording at once then queued behind
    // each other's transactions.
    sqlx::query(
        "WITH u AS ( \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::int4[], \
                 $10::text[], $11::text[], $12::bool[], $13::bool[], $14::text[], \
                 $15::timestamptz[], $16::text[]) \
             AS u(sha256, serial, subject, issuer, not_before, not_after, sans, key_type, \
                 key_bits, key_curve, signature_algorithm, is_ca, self_signed, pem, seen_at, \
                 sha1)), \
         inserted AS ( \
             INSERT INTO certificates (sha256, serial, subject, issuer, not_before, \
                 not_after, sans, key_type, key_bits, key_curve, signature_algorithm, is_ca, \
                 self_signed, pem, first_seen, last_seen, sha1) \
             SELECT u.sha256, u.serial, u.subject, u.issuer, u.not_before, u.not_after, \
                 u.sans::jsonb, u.key_type, u.key_bits, u.key_curve, u.signature_algorithm, \
                 u.is_ca, u.self_signed, u.pem, u.seen_at, u.seen_at, u.sha1 \
             FROM u ORDER BY u.sha256 \
             ON CONFLICT (sha256) DO NOTHING) \
         UPDATE certificates c SET \
             first_seen = LEAST(c.first_seen, u.seen_at), \
             last_seen = GREATEST(c.last_seen, u.seen_at), \
             pem = COALESCE(c.pem, u.pem), \
             sha1 = COALESCE(c.sha1, u.sha1) \
         FROM u \
         WHERE c.sha256 = u.sha256 AND (u.seen_at > c.last_seen + interval '1 minute' \
             OR u.seen_at < c.first_seen OR (c.pem IS NULL AND u.pem IS NOT NULL) \
             OR (c.sha1 IS NULL AND u.sha1 IS NOT NULL))",
    )
    .bind(column(|r| &r.sha256))
    .bind(column(|r| &r.serial))
    .bind(column(|r| &r.subject))
    .bind(column(|r| &r.issuer))
    .bind(times(|r| r.not_before))
    .bind(times(|r| r.not_after))
    .bind(column(|r| &r.sans))
    .bind(column(|r| &r.key_type))
    .bind(rows.iter().map(|r| r.key_bits).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.key_curve.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(column(|r| &r.signature_algorithm))
    .bind(rows.iter().map(|r| r.is_ca).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.self_signed).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.pem.as_deref()).collect::<Vec<_>>())
    .bind(times(|r| r.seen_at))
    .bind(rows.iter().map(|r| r.sha1.as_deref()).collect::<Vec<_>>())
    .execute(connection)
    .await?;
    Ok(())
}

/// Inserts new observations and moves last_seen of known ones; returns the ids by
/// (endpoint, fingerprint). Then records the chains of new ones.
async fn upsert_observations(
    connection: &mut PgConnection,
    rows: &[&ObservationRow],
) -> Result<Vec<((i64, String), i64)>> {
    let text =
        |f: fn(&ObservationRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let returned = sqlx::query(
        "INSERT INTO observations (endpoint_id, fingerprint, status, leaf_sha256, tls_version, \
             cipher, alpn, tls_group, legacy, mtls_requested, mtls_required, ca_names, \
             findings, first_seen, last_seen, mtls_enforced) \
         SELECT u.endpoint_id, u.fingerprint, u.status, u.leaf_sha256, u.tls_version, \
             u.cipher, u.alpn, u.tls_group, u.legacy, u.mtls_requested, u.mtls_required, \
             u.ca_names::jsonb, u.findings::jsonb, u.seen_at, u.seen_at, u.mtls_enforced \
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::bool[], $10::bool[], $11::bool[], $12::text[], \
             $13::text[], $14::timestamptz[], $15::text[]) \
             AS u(endpoint_id, fingerprint, status, leaf_sha256, tls_version, cipher, alpn, \
                 tls_group, legacy, mtls_requested, mtls_required, ca_names, findings, seen_at, \
                 mtls_enforced) \
         ON CONFLICT (endpoint_id, fingerprint) DO UPDATE SET \
             first_seen = LEAST(observations.first_seen, EXCLUDED.first_seen), \
             last_seen = GREATEST(observations.last_seen, EXCLUDED.last_seen) \
         RETURNING id, endpoint_id, fingerprint",
    )
    .bind(rows.iter().map(|r| r.endpoint_id).collect::<Vec<_>>())
    .bind(text(|r| Some(&r.fingerprint)))
    .bind(text(|r| Some(r.status)))
    .bind(text(|r| r.leaf_sha256.as_deref()))
    .bind(text(|r| r.tls_version.as_deref()))
    .bind(text(|r| r.cipher.as_deref()))
    .bind(text(|r| r.alpn.as_deref()))
    .bind(text(|r| r.tls_group.as_deref()))
    .bind(rows.iter().map(|r| r.legacy).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.mtls_requested).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.mtls_required).collect::<Vec<_>>())
    .bind(text(|r| Some(&r.ca_names)))
    .bind(text(|r| Some(&r.findings)))
    .bind(rows.iter().map(|r| r.seen_at).collect::<Vec<_>>())
    .bind(text(|r| r.mtls_enforced))
    .fetch_all(&mut *connection)
    .await?;
    let mut ids = Vec::with_capacity(returned.len());
    for row in &returned {
        let key: (i64, String) = (row.try_get("endpoint_id")?, row.try_get("fingerprint")?);
        ids.push((key, row.try_get::<i64, _>("id")?));
    }
    let by_key: HashMap<&(i64, String), i64> = ids.iter().map(|(k, id)| (k, *id)).collect();
    let (mut observation, mut position, mut sha256) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let Some(id) = by_key.get(&(row.endpoint_id, row.fingerprint.clone())) else {
            continue;
        };
        for (index, certificate) in row.chain.iter().enumerate() {
            observation.push(*id);
            position.push(i32::try_from(index).unwrap_or(i32::MAX));
            sha256.push(certificate.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO observation_chain (observation_id, position, sha256) \
         SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(&observation)
    .bind(&position)
    .bind(&sha256)
    .execute(&mut *connection)
    .await?;
    Ok(ids)
}

async fn insert_rotations(connection: &mut PgConnection, rows: &[RotationRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO rotations (endpoint_id, old_sha256, new_sha256, old_seen_at, \
             new_seen_at, latency_ms) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::timestamptz[], \
             $5::timestamptz[], $6::int8[])",
    )
    .bind(rows.iter().map(|r| r.endpoint_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.old_sha256.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.new_sha256.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.old_seen_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.new_seen_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.latency_ms).collect::<Vec<_>>())
    .execute(connection)
    .await?;
    Ok(())
}

/// Status, schedule and current observation of each probed endpoint; ends its lease.
/// A failing socket its host no longer reports (last reported before `unreported_before`)
/// loses its current observation at its second failure in a row: it no longer serves
/// that certificate (no "still served" mail, not counted).
async fn update_endpoints(
    connection: &mut PgConnection,
    updates: &[EndpointUpdate],
    unreported_before: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "UPDATE endpoints e SET last_status = u.status, last_error = u.error, \
             last_probed_at = u.probed_at, failures = u.failures, \
             next_probe_at = u.next_probe_at, lease_owner = NULL, lease_until = NULL, \
             observation_id = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND e.last_seen < $11) THEN e.observation_id ELSE u.observation_id END, \
             leaf_sha256 = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND e.last_seen < $11) THEN e.leaf_sha256 ELSE u.leaf_sha256 END, \
             leaf_not_after = CASE WHEN u.keep AND NOT (u.failures >= 2 \
                 AND e.last_seen < $11) THEN e.leaf_not_after ELSE u.leaf_not_after END \
         FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::int4[], \
             $6::timestamptz[], $7::int8[], $8::bool[], $9::text[], $10::timestamptz[]) \
             AS u(id, status, error, probed_at, failures, next_probe_at, observation_id, keep, \
                 leaf_sha256, leaf_not_after) \
         WHERE e.id = u.id",
    )
    .bind(updates.iter().map(|u| u.id).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.status).collect::<Vec<_>>())
    .bind(
        updates
            .iter()
            .map(|u| u.error.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(updates.iter().map(|u| u.probed_at).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.failures).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.next_probe_at).collect::<Vec<_>>())
    .bind(updates.iter().map(|u| u.observation_id).collect::<Vec<_>>())
    .bind(
        updates
            .iter()
            .map(|u| u.keep_observation)
            .collect::<Vec<_>>(),
    )
    .bind(
        updates
            .iter()
            .map(|u| u.leaf_sha256.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(updates.iter().map(|u| u.leaf_not_after).collect::<Vec<_>>())
    .bind(unreported_before)
    .execute(connection)
    .await?;
    Ok(())
}

/// Ends the leases that are still `worker`'s; their endpoints are due at the time given.
pub(super) async fn release_leases(
    pool: &PgPool,
    worker: &str,
    leases: &[(Lease, OffsetDateTime)],
) -> Result<u64> {
    let mut released = 0;
    for chunk in leases.chunks(CHUNK) {
        let result = sqlx::query(
            "UPDATE endpoints e SET lease_owner = NULL, lease_until = NULL, \
                 next_probe_at = u.due \
             FROM UNNEST($2::int8[], $3::timestamptz[], $4::timestamptz[]) AS u(id, until, due) \
             WHERE e.id = u.id AND e.lease_owner = $1 AND e.lease_until = u.until",
        )
        .bind(worker)
        .bind(chunk.iter().map(|(l, _)| l.endpoint.0).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(l, _)| l.until).collect::<Vec<_>>())
        .bind(chunk.iter().map(|(_, due)| *due).collect::<Vec<_>>())
        .execute(pool)
        .await?;
        released += result.rows_affected();
    }
    Ok(released)
}

pub(super) async fn retire_endpoints(
    pool: &PgPool,
    now: OffsetDateTime,
    older_than: Duration,
) -> Result<u64> {
    let result = sqlx::query(
        "UPDATE endpoints SET retired_at = $1, lease_owner = NULL, lease_until = NULL \
         WHERE retired_at IS NULL AND last_seen < $2",
    )
    .bind(now)
    .bind(now - older_than)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
