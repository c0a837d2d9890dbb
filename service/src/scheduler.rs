//! The scheduler role: periodic housekeeping of the store, and expiry notifications.

use std::sync::Arc;
use std::time::Duration;

use certfleet_notifier::Notifier;
use certfleet_store::Store;
use tokio_util::sync::CancellationToken;

/// Every `every`: write today's mTLS adoption snapshot, retire endpoints that no report
/// mentioned for `retire_after`, and run the notifier (if any). When a delivery failed,
/// the next notification run comes as soon as its retry is due (at least 5 seconds later,
/// at most `every`).
pub async fn run(
    store: Arc<dyn Store>,
    every: Duration,
    retire_after: time::Duration,
    notifier: Option<Notifier>,
    shutdown: CancellationToken,
) {
    let mut housekeeping_due = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= housekeeping_due {
            housekeeping(&*store, retire_after).await;
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

async fn housekeeping(store: &dyn Store, retire_after: time::Duration) {
    match store.retire_endpoints(retire_after).await {
        Ok(0) => {}
        Ok(retired) => tracing::info!(retired, "endpoints retired"),
        Err(error) => tracing::warn!(%error, "cannot retire endpoints"),
    }
    if let Err(error) = store.snapshot_mtls_adoption().await {
        tracing::warn!(%error, "cannot snapshot mTLS adoption");
    }
}
