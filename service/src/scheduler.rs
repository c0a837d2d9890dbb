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
