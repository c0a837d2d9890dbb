//! The notification outbox on SQLite: lists are bound as one JSON array and read with
//! `json_each`; every write runs under the database's write lock (`BEGIN IMMEDIATE`), so
//! a claim or a lease is never shared.

use async_trait::async_trait;
use sqlx::SqlitePool;
use time::{Duration, OffsetDateTime};

use super::{seconds, write, SqliteStore, CHUNK};
use crate::error::Result;
use crate::notify::NotificationStore;
use crate::notify_records::{self as records, *};
use crate::records::CertificateRecord;
use crate::rows::{self, CERTIFICATE_COLUMNS};

/// A pending row that may be attempted now (`$1`) and is not leased by anyone.
const DUE: &str = "n.sent_at IS NULL AND n.resolved_at IS NULL \
    AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= $1) \
    AND (n.lease_until IS NULL OR n.lease_until <= $1)";

/// `id IN` a JSON array bound as `$1`.
const IDS: &str = "id IN (SELECT value FROM json_each($1))";

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn notification_candidates(
        &self,
        deadline: OffsetDateTime,
    ) -> Result<Vec<NotificationCandidate>> {
        let rows = sqlx::query(records::CANDIDATES)
            .bind(seconds(deadline))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(records::candidate).collect()
    }

    async fn claim_notifications(&self, claims: &[NotificationClaim]) -> Result<u64> {
        let now = seconds(self.now());
        let mut transaction = write(&self.pool).await?;
        let mut claimed = 0;
        for chunk in claims.chunks(CHUNK) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|c| (&c.sha256, &c.owner, &c.threshold))
                .collect();
            claimed += sqlx::query(
                "INSERT INTO notifications (sha256, owner, threshold, created_at) \
                 SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, $1 \
                 FROM json_each($2) AS j WHERE true \
                 ON CONFLICT (sha256, owner, threshold) DO NOTHING",
            )
            .bind(now)
            .bind(serde_json::to_string(&rows)?)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        }
        transaction.commit().await?;
        Ok(claimed)
    }

    async fn existing_claims(
        &self,
        claims: &[NotificationClaim],
    ) -> Result<Vec<NotificationClaim>> {
        let mut existing = Vec::new();
        for chunk in claims.chunks(CHUNK) {
            let rows: Vec<_> = chunk
                .iter()
                .map(|c| (&c.sha256, &c.owner, &c.threshold))
                .collect();
            let found: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT n.sha256, n.owner, n.threshold FROM json_each($1) AS j \
                 JOIN notifications n ON n.sha256 = j.value ->> 0 \
                     AND n.owner = j.value ->> 1 AND n.threshold = j.value ->> 2",
            )
            .bind(serde_json::to_string(&rows)?)
            .fetch_all(&self.pool)
            .await?;
            existing.extend(found.into_iter().map(|(sha256, owner, threshold)| {
                NotificationClaim {
                    sha256,
                    owner,
                    threshold,
                }
            }));
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
        let mut transaction = write(&self.pool).await?;
        let result = sqlx::query(&format!(
            "UPDATE notifications SET resolved_at = $2, resolution = $3, lease_owner = NULL, \
                 lease_until = NULL \
             WHERE {IDS} AND resolved_at IS NULL"
        ))
        .bind(serde_json::to_string(ids)?)
        .bind(seconds(self.now()))
        .bind(resolution.as_str())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(result.rows_affected())
    }

    async fn lease_notifications(
        &self,
        worker: &str,
        owners: u32,
        lease_for: Duration,
    ) -> Result<Vec<NotificationRecord>> {
        let now = self.now();
        let mut transaction = write(&self.pool).await?;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT n.id FROM notifications n WHERE {DUE} AND n.owner IN ( \
                 SELECT n.owner FROM notifications n WHERE {DUE} \
                 GROUP BY n.owner ORDER BY MIN(COALESCE(n.next_attempt_at, n.created_at)) \
                 LIMIT $2)"
        ))
        .bind(seconds(now))
        .bind(i64::from(owners))
        .fetch_all(&mut *transaction)
        .await?;
        let ids = serde_json::to_string(&ids)?;
        sqlx::query(&format!(
            "UPDATE notifications SET lease_owner = $2, lease_until = $3 WHERE {IDS}"
        ))
        .bind(&ids)
        .bind(worker)
        .bind(seconds(now + lease_for))
        .execute(&mut *transaction)
        .await?;
        let rows = sqlx::query(&format!(
            "{NOTIFICATION_SELECT} WHERE n.{IDS} ORDER BY n.owner, n.id"
        ))
        .bind(&ids)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(records::notification).collect()
    }

    async fn renew_notification_lease(
        &self,
        worker: &str,
        ids: &[i64],
        lease_for: Duration,
    ) -> Result<Vec<i64>> {
        let mut transaction = write(&self.pool).await?;
        let held = sqlx::query_scalar(&format!(
            "UPDATE notifications SET lease_until = $3 \
             WHERE {IDS} AND lease_owner = $2 AND sent_at IS NULL AND resolved_at IS NULL \
             RETURNING id"
        ))
        .bind(serde_json::to_string(ids)?)
        .bind(worker)
        .bind(seconds(self.now() + lease_for))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(held)
    }

    async fn notifications_sent(&self, ids: &[i64]) -> Result<u64> {
        let mut transaction = write(&self.pool).await?;
        let result = sqlx::query(&format!(
            "UPDATE notifications SET sent_at = $2, next_attempt_at = NULL, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE {IDS} AND sent_at IS NULL"
        ))
        .bind(serde_json::to_string(ids)?)
        .bind(seconds(self.now()))
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
        let mut transaction = write(&self.pool).await?;
        let result = sqlx::query(&format!(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE {IDS} AND sent_at IS NULL"
        ))
        .bind(serde_json::to_string(ids)?)
        .bind(error)
        .bind(seconds(retry_at))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        .bind(i64::from(count))
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
        let mut transaction = write(&self.pool).await?;
        let row = sqlx::query(
            "INSERT INTO notification_mutes (sha256, reason, muted_until, created_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sha256) DO UPDATE SET reason = excluded.reason, \
                 muted_until = excluded.muted_until, created_at = excluded.created_at \
             RETURNING sha256, reason, muted_until, created_at",
        )
        .bind(sha256_key(sha256)?)
        .bind(reason)
        .bind(seconds(until))
        .bind(seconds(self.now()))
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        records::mute(&row)
    }

    async fn unmute_certificate(&self, sha256: &str) -> Result<bool> {
        let mut transaction = write(&self.pool).await?;
        let result = sqlx::query("DELETE FROM notification_mutes WHERE sha256 = $1")
            .bind(sha256_key(sha256)?)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    async fn muted_certificates(&self) -> Result<Vec<Mute>> {
        let rows = sqlx::query(
            "SELECT sha256, reason, muted_until, created_at FROM notification_mutes \
             WHERE muted_until > $1 ORDER BY sha256",
        )
        .bind(seconds(self.now()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(records::mute).collect()
    }

    async fn certificates_by_sha256(&self, sha256: &[String]) -> Result<Vec<CertificateRecord>> {
        let mut certificates = Vec::with_capacity(sha256.len());
        for chunk in sha256.chunks(CHUNK) {
            let rows = sqlx::query(&format!(
                "SELECT {CERTIFICATE_COLUMNS} FROM certificates c \
                 WHERE c.sha256 IN (SELECT value FROM json_each($1))"
            ))
            .bind(serde_json::to_string(chunk)?)
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                certificates.push(rows::certificate(row)?);
            }
        }
        Ok(certificates)
    }
}

async fn select(pool: &SqlitePool, sql: &str) -> Result<Vec<NotificationRecord>> {
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter().map(records::notification).collect()
}
