//! The scheduler role: periodic housekeeping of the store, and expiry notifications.

use std::sync::Arc;
use std::time::Duration;

use certfleet_notifier::Notifier;
use certfleet_store::{PruneCounts, RetentionPolicy, Store};
use tokio_util::sync::CancellationToken;

/// What the scheduler's housekeeping does besides the mTLS snapshot.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    /// Endpoints that no report mentioned for this long retire.
    pub retire_after: time::Duration,
    /// What is pruned (`[retention]`).
    pub retention: RetentionPolicy,
    /// Prune batches per run at most, so that one run stays short however much is due;
    /// the rest waits for the next run.
    pub batches_per_run: u32,
}

/// Every `every`: write today's mTLS adoption snapshot, retire endpoints, prune what the
/// retention policy allows (see [`Housekeeping`]), and run the notifier (if any). When a
/// delivery failed, the next notification run comes as soon as its retry is due (at
/// least 5 seconds later, at most `every`).
pub async fn run(
    store: Arc<dyn Store>,
    every: Duration,
    chores: Housekeeping,
    notifier: Option<Notifier>,
    shutdown: CancellationToken,
) {
    let mut housekeeping_due = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= housekeeping_due {
            housekeeping(&*store, &chores, &shutdown).await;
            housekeeping_due = tokio::time::Instant::now() + every;
        }
        let mut wait = housekeeping_due.saturating_duration_since(tokio::time::Instant::now());
        if let Some(notifier) = &notifier {
            match notifier.run_once().await {
                Ok(report) => {
                    if report.claimed > 0 || report.digests_sent > 0 || !report.failures.is_empty()
                    {
                        tracing::info!(
                            due = report.due,
                            claimed = report.claimed,
                            resolved = report.resolved,
                            confirmed = report.confirmed.probed,
                            rotated = report.rotated,
                            digests = report.digests_sent,
                            failed = report.failures.len(),
                            "notification run"
                        );
                    }
                    if let Some(at) = report.next_attempt_at {
                        let until =
                            (at - time::OffsetDateTime::now_utc()).max(time::Duration::SECOND);
                        let until = Duration::try_from(until).unwrap_or(every);
                        wait = wait.min(until);
                    }
                }
                Err(error) => tracing::warn!(%error, "notification run failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_secs(5))) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn housekeeping(store: &dyn Store, chores: &Housekeeping, shutdown: &CancellationToken) {
    match store.retire_endpoints(chores.retire_after).await {
        Ok(0) => {}
        Ok(retired) => tracing::info!(retired, "endpoints retired"),
        Err(error) => tracing::warn!(%error, "cannot retire endpoints"),
    }
    if let Err(error) = store.snapshot_mtls_adoption().await {
        tracing::warn!(%error, "cannot snapshot mTLS adoption");
    }
    prune(store, &chores.retention, chores.batches_per_run, shutdown).await;
}

/// Prunes at most `batches` batches; returns what went. Stops early when nothing is left,
/// on an error (logged; the next run tries again) and at shutdown.
pub async fn prune(
    store: &dyn Store,
    policy: &RetentionPolicy,
    batches: u32,
    shutdown: &CancellationToken,
) -> PruneCounts {
    let mut pruned = PruneCounts::default();
    if !policy.prunes() {
        return pruned;
    }
    for _ in 0..batches {
        if shutdown.is_cancelled() {
            break;
        }
        match store.prune_batch(policy).await {
            Ok(batch) => {
                pruned += batch;
                if batch.drained(policy.batch) {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot prune");
                break;
            }
        }
    }
    if pruned.total() > 0 {
        tracing::info!(
            certificates = pruned.certificates,
            observations = pruned.observations,
            endpoints = pruned.endpoints,
            hosts = pruned.hosts,
            "retention pruned"
        );
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_store::{ReadModel, SqliteStore, StoreOptions};

    /// A run prunes at most its batches; the next run goes on where it stopped.
    #[tokio::test]
    async fn a_run_prunes_at_most_its_batches() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("store.db").display());
        let store = SqliteStore::connect(&url, StoreOptions::default())
            .await
            .expect("SQLite opens");
        store.migrate().await.expect("migrates");
        // 25 certificates last seen in 1970, which no endpoint serves.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25) \
             INSERT INTO certificates (sha256, serial, subject, issuer, not_before, not_after, \
                 sans, key_type, key_bits, signature_algorithm, is_ca, self_signed, \
                 first_seen, last_seen) \
             SELECT printf('%064x', i), printf('%x', i), 'CN=old', 'CN=old', 0, 1, '[]', \
                 'ecdsa', 256, 'ecdsa-with-SHA256', 0, 0, 0, 0 FROM n",
        )
        .execute(store.pool())
        .await
        .expect("seed");
        let store: Arc<dyn Store> = Arc::new(store);
        let policy = RetentionPolicy {
            certificates: Some(time::Duration::days(90)),
            batch: 10,
            ..RetentionPolicy::default()
        };
        let running = CancellationToken::new();
        let first = prune(&*store, &policy, 2, &running).await;
        assert_eq!(first.certificates, 20, "two batches of ten");
        let second = prune(&*store, &policy, 2, &running).await;
        assert_eq!(second.certificates, 5, "the rest, then it stops");
        let totals = store.pruned_totals().await.expect("totals");
        assert_eq!(totals.certificates, 25);
        let stopped = CancellationToken::new();
        stopped.cancel();
        let keep_nothing = RetentionPolicy {
            hosts: Some(time::Duration::ZERO),
            ..policy
        };
        let none = prune(&*store, &keep_nothing, 2, &stopped).await;
        assert_eq!(none, PruneCounts::default(), "nothing after shutdown");
    }
}
