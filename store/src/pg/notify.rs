//! The notification outbox on PostgreSQL: claims are one `INSERT ... ON CONFLICT DO
//! NOTHING` per 10,000 rows; leases lock rows with `FOR UPDATE SKIP LOCKED`.

use async_trait::async_trait;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use super::{limit, PostgresStore, CHUNK};
use crate::error::Result;
use crate::notify::NotificationStore;
use crate::notify_records::{self as records, *};
use crate::records::CertificateRecord;
use crate::rows::{self, CERTIFICATE_COLUMNS};

/// A pending row that may be attempted now (`$1`) and is not leased by anyone.
const DUE: &str = "n.sent_at IS NULL AND n.resolved_at IS NULL \
    AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= $1) \
    AND (n.lease_until IS NULL OR n.lease_until <= $1)";

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn notification_candidates(
        &self,
        deadline: OffsetDateTime,
    ) -> Result<Vec<NotificationCandidate>> {
        // JIT compilation costs more than it saves on this plan (a quarter of a second
        // at a million endpoints), so it is off for this one transaction.
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SET LOCAL jit = off")
            .execute(&mut *transaction)
            .await?;
        let rows = sqlx::query(records::CANDIDATES)
            .bind(deadline)
            .fetch_all(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rows.iter().map(records::candidate).collect()
    }

    async fn claim_notifications(&self, claims: &[NotificationClaim]) -> Result<u64> {
        let now = self.now();
        let mut claimed = 0;
        for chunk in claims.chunks(CHUNK) {
            let column =
                |f: fn(&NotificationClaim) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
            claimed += sqlx::query(
                "INSERT INTO notifications (sha256, owner, threshold, created_at) \
                 SELECT u.sha256, u.owner, u.threshold, $4 \
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(sha256, owner, threshold) \
                 ON CONFLICT (sha256, owner, threshold) DO NOTHING",
            )
            .bind(column(|c| &c.sha256))
            .bind(column(|c| &c.owner))
            .bind(column(|c| &c.threshold))
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(claimed)
    }

    async fn existing_claims(
        &self,
        claims: &[NotificationClaim],
    ) -> Result<Vec<NotificationClaim>> {
        let mut existing = Vec::new();
        for chunk in claims.chunks(CHUNK) {
            let column =
                |f: fn(&NotificationClaim) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT n.sha256, n.owner, n.threshold FROM notifications n \
                 JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS u(sha256, owner, threshold) \
                     ON n.sha256 = u.sha256 AND n.owner = u.owner AND n.threshold = u.threshold",
            )
            .bind(column(|c| &c.sha256))
            .bind(column(|c| &c.owner))
            .bind(column(|c| &c.threshold))
            .fetch_all(&self.pool)
            .await?;
            existing.extend(rows.into_iter().map(claim));
        }
        Ok(existing)
    }

    async fn open_notifications(&self) -> Result<Vec<NotificationRecord>> {
        select(
            &self.pool,
            &format!("{NOTIFICATION_SELECT} WHERE n.resolved_at IS NULL ORDER BY n.id"),
        )
        .await
    }

    async fn resolve_notifications(&self, ids: &[i64], resolution: Resolution) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE notifications SET resolved_at = $2, resolution = $3, lease_owner = NULL, \
                 lease_until = NULL \
             WHERE id = ANY($1) AND resolved_at IS NULL",
        )
        .bind(ids)
        .bind(self.now())
        .bind(resolution.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn lease_notifications(
        &self,
        worker: &str,
        owners: u32,
        lease_for: Duration,
    ) -> Result<Vec<NotificationRecord>> {
        let now = self.now();
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "WITH owners AS ( \
                 SELECT n.owner FROM notifications n WHERE {DUE} \
                 GROUP BY n.owner ORDER BY MIN(COALESCE(n.next_attempt_at, n.created_at)) \
                 LIMIT $2), \
             due AS ( \
                 SELECT n.id FROM notifications n JOIN owners o ON o.owner = n.owner \
                 WHERE {DUE} FOR UPDATE OF n SKIP LOCKED) \
             UPDATE notifications n SET lease_owner = $3, lease_until = $4 \
             FROM due WHERE n.id = due.id RETURNING n.id"
        ))
        .bind(now)
        .bind(limit(owners))
        .bind(worker)
        .bind(now + lease_for)
        .fetch_all(&self.pool)
        .await?;
        let rows = sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE n.id = ANY($1) ORDER BY n.owner, n.id"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(records::notification).collect()
    }

    async fn renew_notification_lease(
        &self,
        worker: &str,
        ids: &[i64],
        lease_for: Duration,
    ) -> Result<Vec<i64>> {
        let held = sqlx::query_scalar(
            "UPDATE notifications SET lease_until = $3 \
             WHERE id = ANY($1) AND lease_owner = $2 \
                 AND sent_at IS NULL AND resolved_at IS NULL \
             RETURNING id",
        )
        .bind(ids)
        .bind(worker)
        .bind(self.now() + lease_for)
        .fetch_all(&self.pool)
        .await?;
        Ok(held)
    }

    async fn notifications_sent(&self, ids: &[i64]) -> Result<u64> {
        // A durable commit: with `synchronous_commit = off` a PostgreSQL crash lost the
        // "sent" marks of the last WAL-writer window, and those digests went out twice
        // (notifier/tests/integration/db_restart.rs). Concurrent senders share flushes.
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE notifications SET sent_at = $2, next_attempt_at = NULL, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE id = ANY($1) AND sent_at IS NULL",
        )
        .bind(ids)
        .bind(self.now())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(result.rows_affected())
    }

    async fn notifications_failed(
        &self,
        ids: &[i64],
        error: &str,
        retry_at: OffsetDateTime,
    ) -> Result<u64> {
        let result = sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id = ANY($1) AND sent_at IS NULL",
        )
        .bind(ids)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn notification_status(&self, count: u32) -> Result<NotificationStatus> {
        let row = sqlx::query(records::STATUS_COUNTS)
            .fetch_one(&self.pool)
            .await?;
        let mut status = records::status_counts(&row)?;
        let rows = sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE n.sent_at IS NULL AND n.resolved_at IS NULL \
                 AND n.attempts > 0 ORDER BY n.attempts DESC, n.id LIMIT $1"
        ))
        .bind(limit(count))
        .fetch_all(&self.pool)
        .await?;
        status.failures = rows
            .iter()
            .map(records::notification)
            .collect::<Result<_>>()?;
        Ok(status)
    }

    async fn certificate_notifications(&self, sha256: &str) -> Result<Vec<NotificationRecord>> {
        let rows = sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE n.sha256 = $1 ORDER BY n.created_at DESC, n.id DESC"
        ))
        .bind(sha256_key(sha256)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(records::notification).collect()
    }

    async fn mute_certificate(
        &self,
        sha256: &str,
        reason: &str,
        until: OffsetDateTime,
    ) -> Result<Mute> {
        let row = sqlx::query(
            "INSERT INTO notification_mutes (sha256, reason, muted_until, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO UPDATE SET reason = EXCLUDED.reason, \
                 muted_until = EXCLUDED.muted_until, created_at = EXCLUDED.created_at \
             RETURNING sha256, reason, muted_until, created_at",
        )
        .bind(sha256_key(sha256)?)
        .bind(reason)
        .bind(until)
        .bind(self.now())
        .fetch_one(&self.pool)
        .await?;
        records::mute(&row)
    }

    async fn unmute_certificate(&self, sha256: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM notification_mutes WHERE sha256 = $1")
            .bind(sha256_key(sha256)?)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn muted_certificates(&self) -> Result<Vec<Mute>> {
        let rows = sqlx::query(
            "SELECT sha256, reason, muted_until, created_at FROM notification_mutes \
             WHERE muted_until > $1 ORDER BY sha256",
        )
        .bind(self.now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(records::mute).collect()
    }

    async fn certificates_by_sha256(&self, sha256: &[String]) -> Result<Vec<CertificateRecord>> {
        let mut certificates = Vec::with_capacity(sha256.len());
        for chunk in sha256.chunks(CHUNK) {
            let rows = sqlx::query(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE c.sha256 = ANY($1)"
            ))
            .bind(chunk)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                certificates.push(rows::certificate(row)?);
            }
        }
        Ok(certificates)
    }
}

fn claim((sha256, owner, threshold): (String, String, String)) -> NotificationClaim {
    NotificationClaim {
        sha256,
        owner,
        threshold,
    }
}

async fn select(pool: &PgPool, sql: &str) -> Result<Vec<NotificationRecord>> {
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter().map(records::notification).collect()
}
