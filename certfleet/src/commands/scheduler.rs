//! The scheduler role: periodic housekeeping of the store.

use std::sync::Arc;
use std::time::Duration;

use certfleet_store::Store;
use tokio::sync::watch;

/// Every `every`: write today's mTLS adoption snapshot and retire endpoints that no report
/// mentioned for `retire_after`.
pub async fn run(
    store: Arc<dyn Store>,
    every: Duration,
    retire_after: time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match store.retire_endpoints(retire_after).await {
            Ok(0) => {}
            Ok(retired) => tracing::info!(retired, "endpoints retired"),
            Err(error) => tracing::warn!(%error, "cannot retire endpoints"),
        }
        if let Err(error) = store.snapshot_mtls_adoption().await {
            tracing::warn!(%error, "cannot snapshot mTLS adoption");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}
