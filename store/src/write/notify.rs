//! The notification outbox: claims are one `INSERT ... ON CONFLICT DO NOTHING` per 10,000
//! rows; a lease takes the due rows of the first owners (PostgreSQL skips rows another
//! leaser holds with `FOR UPDATE SKIP LOCKED`; SQLite's write lock serializes leasers).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::events::notification_events_sql;
use super::CHUNK;
use crate::db::{plain, read_all, with_arg, Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::events::EventKind;
use crate::notify::NotificationStore;
use crate::notify_records::{self as records, *};
use crate::records::CertificateRecord;
use crate::rows::{self, ReadRow, CERTIFICATE_COLUMNS};
use crate::store::SqlStore;

/// A pending row that may be attempted now (`$1`) and is not leased by anyone.
const DUE: &str = "n.sent_at IS NULL AND n.resolved_at IS NULL \
    AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= $1) \
    AND (n.lease_until IS NULL OR n.lease_until <= $1)";

/// A claim of at least this many rows refreshes the outbox's planner statistics.
const ANALYZE_AFTER_CLAIMS: u64 = 1_000;

/// The claims as a batch.
fn claim_batch(claims: &[NotificationClaim]) -> Batch {
    Batch::new(claims.len())
        .text("sha256", claims, |c| Some(c.sha256.as_str()))
        .text("owner", claims, |c| Some(c.owner.as_str()))
        .text("threshold", claims, |c| Some(c.threshold.as_str()))
}

/// A query of `sql`, where `{ids}` stands for `<id> IN` the ids bound as `$1`, and more
/// arguments.
fn with_ids<D: Db>(sql: &str, ids: &[i64], more: Vec<Bind>) -> Query {
    let mut binds = vec![Bind::Ints(ids.to_vec())];
    binds.extend(more);
    Query {
        sql: sql.replace("{ids}", &D::DIALECT.any("$1")),
        binds,
    }
}

#[async_trait]
impl<D: Db> NotificationStore for SqlStore<D> {
    async fn notification_candidates(
        &self,
        deadline: OffsetDateTime,
    ) -> Result<Vec<NotificationCandidate>> {
        let query = with_arg(records::CANDIDATES, Bind::Time(deadline));
        self.pool().heavy_read(&query, records::candidate).await
    }

    async fn claim_notifications(&self, claims: &[NotificationClaim]) -> Result<u64> {
        let now = self.now();
        let mut claimed = 0;
        let mut transaction = self.pool().begin().await?;
        for chunk in claims.chunks(CHUNK) {
            let mut query = Query::default();
            let now = query.arg(Bind::Time(now));
            let source = D::bind_batch(&mut query, claim_batch(chunk));
            query.sql = format!(
                "INSERT INTO notifications (sha256, owner, threshold, created_at) \
                 SELECT u.sha256, u.owner, u.threshold, {now} FROM {source} WHERE true \
                 ON CONFLICT (sha256, owner, threshold) DO NOTHING"
            );
            if !self.options().events {
                claimed += transaction.execute(&query).await?;
                continue;
            }
            // A claim is a threshold crossed: its event, in the same transaction.
            query.sql.push_str(" RETURNING id");
            let ids = transaction
                .rows(&query)
                .await?
                .iter()
                .map(|row| row.int("id"))
                .collect::<Result<Vec<i64>>>()?;
            claimed += ids.len() as u64;
            let clause = format!("WHERE n.id {}", D::DIALECT.any("$1"));
            let kind = EventKind::CertificateExpiring;
            let events = Query {
                sql: notification_events_sql(D::DIALECT, kind, "$2", "NULL", &clause),
                binds: vec![Bind::Ints(ids), Bind::Time(self.now())],
            };
            transaction.execute(&events).await?;
        }
        transaction.commit().await?;
        if claimed >= ANALYZE_AFTER_CLAIMS {
            // Until autovacuum gets to it, the planner believes the outbox as small as
            // before this claim, and every lease renewal, "sent" mark and lease of the run
            // that follows then walks all pending rows instead of its ids (100-300 ms per
            // digest at 100,000 claims, bench/notify.sh). Sampling the table is cheap.
            self.pool().write(&plain("ANALYZE notifications")).await?;
        }
        Ok(claimed)
    }

    async fn existing_claims(
        &self,
        claims: &[NotificationClaim],
    ) -> Result<Vec<NotificationClaim>> {
        let mut existing = Vec::new();
        for chunk in claims.chunks(CHUNK) {
            let mut query = Query::default();
            let source = D::bind_batch(&mut query, claim_batch(chunk));
            query.sql = format!(
                "SELECT n.sha256, n.owner, n.threshold FROM {source} \
                 JOIN notifications n ON n.sha256 = u.sha256 AND n.owner = u.owner \
                     AND n.threshold = u.threshold"
            );
            let found = read_all(self.pool(), &query, |row| {
                Ok(NotificationClaim {
                    sha256: row.text("sha256")?,
                    owner: row.text("owner")?,
                    threshold: row.text("threshold")?,
                })
            });
            existing.extend(found.await?);
        }
        Ok(existing)
    }

    async fn open_notifications(&self) -> Result<Vec<NotificationRecord>> {
        let sql = format!("{NOTIFICATION_SELECT} WHERE n.resolved_at IS NULL ORDER BY n.id");
        read_all(self.pool(), &plain(sql), records::notification).await
    }

    async fn resolve_notifications(&self, ids: &[i64], resolution: Resolution) -> Result<u64> {
        let query = with_ids::<D>(
            "UPDATE notifications SET resolved_at = $2, resolution = $3, lease_owner = NULL, \
                 lease_until = NULL \
             WHERE id {ids} AND resolved_at IS NULL",
            ids,
            vec![
                Bind::Time(self.now()),
                Bind::Text(resolution.as_str().into()),
            ],
        );
        self.pool().write(&query).await
    }

    async fn lease_notifications(
        &self,
        worker: &str,
        owners: u32,
        lease_for: Duration,
    ) -> Result<Vec<NotificationRecord>> {
        let now = self.now();
        let binds = vec![
            Bind::Time(now),
            Bind::Int(i64::from(owners)),
            Bind::Text(worker.into()),
            Bind::Time(now + lease_for),
        ];
        let first_owners = "SELECT n.owner FROM notifications n WHERE {DUE} \
            GROUP BY n.owner ORDER BY MIN(COALESCE(n.next_attempt_at, n.created_at)) LIMIT $2"
            .replace("{DUE}", DUE);
        let mut transaction = self.pool().begin().await?;
        let ids: Vec<i64> = match D::DIALECT {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH owners AS ({first_owners}), \
                     due AS ( \
                         SELECT n.id FROM notifications n JOIN owners o ON o.owner = n.owner \
                         WHERE {DUE} FOR UPDATE OF n SKIP LOCKED) \
                     UPDATE notifications n SET lease_owner = $3, lease_until = $4 \
                     FROM due WHERE n.id = due.id RETURNING n.id"
                );
                let rows = transaction.rows(&Query { sql, binds }).await?;
                rows.iter()
                    .map(|row| row.int("id"))
                    .collect::<Result<_>>()?
            }
            Dialect::Sqlite => {
                let sql = format!(
                    "SELECT n.id FROM notifications n WHERE {DUE} AND n.owner IN ({first_owners})"
                );
                let select = Query {
                    sql,
                    binds: binds[..2].to_vec(),
                };
                let rows = transaction.rows(&select).await?;
                let ids: Vec<i64> = rows
                    .iter()
                    .map(|row| row.int("id"))
                    .collect::<Result<_>>()?;
                let lease = with_ids::<D>(
                    "UPDATE notifications SET lease_owner = $2, lease_until = $3 WHERE id {ids}",
                    &ids,
                    binds[2..].to_vec(),
                );
                transaction.execute(&lease).await?;
                ids
            }
        };
        let select = with_ids::<D>(
            &format!("{NOTIFICATION_SELECT} WHERE n.id {{ids}} ORDER BY n.owner, n.id"),
            &ids,
            vec![],
        );
        let rows = transaction.rows(&select).await?;
        transaction.commit().await?;
        rows.iter().map(records::notification).collect()
    }

    async fn renew_notification_lease(
        &self,
        worker: &str,
        ids: &[i64],
        lease_for: Duration,
    ) -> Result<Vec<i64>> {
        let query = with_ids::<D>(
            "UPDATE notifications SET lease_until = $3 \
             WHERE id {ids} AND lease_owner = $2 AND sent_at IS NULL AND resolved_at IS NULL \
             RETURNING id",
            ids,
            vec![
                Bind::Text(worker.into()),
                Bind::Time(self.now() + lease_for),
            ],
        );
        let rows = self.pool().write_rows(&query).await?;
        rows.iter().map(|row| row.int("id")).collect()
    }

    async fn notifications_sent(&self, ids: &[i64]) -> Result<u64> {
        // A durable commit: with `synchronous_commit = off` a PostgreSQL crash lost the
        // "sent" marks of the last WAL-writer window, and those digests went out twice
        // (notifier/tests/integration/db_restart.rs). Concurrent senders share flushes.
        let query = with_ids::<D>(
            "UPDATE notifications SET sent_at = $2, next_attempt_at = NULL, \
                 lease_owner = NULL, lease_until = NULL \
             WHERE id {ids} AND sent_at IS NULL",
            ids,
            vec![Bind::Time(self.now())],
        );
        let mut transaction = self.pool().begin().await?;
        if self.options().events {
            let events = with_ids::<D>(
                &notification_events_sql(
                    D::DIALECT,
                    EventKind::NotificationSent,
                    "$2",
                    "NULL",
                    "WHERE n.id {ids} AND n.sent_at IS NULL",
                ),
                ids,
                vec![Bind::Time(self.now())],
            );
            transaction.execute(&events).await?;
        }
        let sent = transaction.execute(&query).await?;
        transaction.commit().await?;
        Ok(sent)
    }

    async fn notifications_failed(
        &self,
        ids: &[i64],
        error: &str,
        retry_at: OffsetDateTime,
    ) -> Result<u64> {
        let query = with_ids::<D>(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $2, \
                 next_attempt_at = $3, lease_owner = NULL, lease_until = NULL \
             WHERE id {ids} AND sent_at IS NULL",
            ids,
            vec![Bind::Text(error.into()), Bind::Time(retry_at)],
        );
        if !self.options().events {
            return self.pool().write(&query).await;
        }
        let events = with_ids::<D>(
            &notification_events_sql(
                D::DIALECT,
                EventKind::NotificationFailed,
                "$3",
                "$2",
                "WHERE n.id {ids} AND n.sent_at IS NULL",
            ),
            ids,
            vec![Bind::Text(error.into()), Bind::Time(self.now())],
        );
        let mut transaction = self.pool().begin().await?;
        transaction.execute(&events).await?;
        let failed = transaction.execute(&query).await?;
        transaction.commit().await?;
        Ok(failed)
    }

    async fn notification_status(&self, count: u32) -> Result<NotificationStatus> {
        let counts = plain(records::STATUS_COUNTS);
        let mut status = match self.pool().rows(&counts).await?.first() {
            Some(row) => records::status_counts(row)?,
            None => return Err(crate::Error::NotFound { what: "status" }),
        };
        let failures = with_arg(
            format!(
                "{NOTIFICATION_SELECT} WHERE n.sent_at IS NULL AND n.resolved_at IS NULL \
                     AND n.attempts > 0 ORDER BY n.attempts DESC, n.id LIMIT $1"
            ),
            Bind::Int(i64::from(count)),
        );
        status.failures = read_all(self.pool(), &failures, records::notification).await?;
        Ok(status)
    }

    async fn certificate_notifications(&self, sha256: &str) -> Result<Vec<NotificationRecord>> {
        let query = with_arg(
            format!(
                "{NOTIFICATION_SELECT} WHERE n.sha256 = $1 ORDER BY n.created_at DESC, n.id DESC"
            ),
            Bind::Text(sha256_key(sha256)?),
        );
        read_all(self.pool(), &query, records::notification).await
    }

    async fn mute_certificate(
        &self,
        sha256: &str,
        reason: &str,
        until: OffsetDateTime,
    ) -> Result<Mute> {
        let query = Query {
            sql: "INSERT INTO notification_mutes (sha256, reason, muted_until, created_at) \
                  VALUES ($1, $2, $3, $4) \
                  ON CONFLICT (sha256) DO UPDATE SET reason = excluded.reason, \
                      muted_until = excluded.muted_until, created_at = excluded.created_at \
                  RETURNING sha256, reason, muted_until, created_at"
                .into(),
            binds: vec![
                Bind::Text(sha256_key(sha256)?),
                Bind::Text(reason.into()),
                Bind::Time(until),
                Bind::Time(self.now()),
            ],
        };
        match self.pool().write_rows(&query).await?.first() {
            Some(row) => records::mute(row),
            None => Err(crate::Error::NotFound { what: "mute" }),
        }
    }

    async fn unmute_certificate(&self, sha256: &str) -> Result<bool> {
        let query = with_arg(
            "DELETE FROM notification_mutes WHERE sha256 = $1",
            Bind::Text(sha256_key(sha256)?),
        );
        Ok(self.pool().write(&query).await? > 0)
    }

    async fn muted_certificates(&self) -> Result<Vec<Mute>> {
        let query = with_arg(
            "SELECT sha256, reason, muted_until, created_at FROM notification_mutes \
             WHERE muted_until > $1 ORDER BY sha256",
            Bind::Time(self.now()),
        );
        read_all(self.pool(), &query, records::mute).await
    }

    async fn certificates_by_sha256(&self, sha256: &[String]) -> Result<Vec<CertificateRecord>> {
        let mut certificates = Vec::with_capacity(sha256.len());
        for chunk in sha256.chunks(CHUNK) {
            let query = Query {
                sql: format!(
                    "SELECT {CERTIFICATE_COLUMNS} FROM certificates c WHERE c.sha256 {}",
                    D::DIALECT.any("$1")
                ),
                binds: vec![Bind::Texts(chunk.to_vec())],
            };
            certificates.extend(read_all(self.pool(), &query, rows::certificate).await?);
        }
        Ok(certificates)
    }
}
