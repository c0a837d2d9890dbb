//! The fleet overview, kept in memory: computing it is one pass over every active
//! endpoint (seconds at fleet size), so the dashboard, the mTLS summary and `/metrics`
//! share one copy that is at most `ttl` old, refreshed in the background while a
//! slightly older copy keeps answering. Only one refresh runs at a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certfleet_store::{ExpiringCertificate, FleetOverview, Store};
use tokio::sync::Mutex as AsyncMutex;

use crate::ApiError;

/// A copy older than `ttl` times this is not served while a new one is computed: the
/// caller waits instead.
const STALE_FACTOR: u32 = 4;

type Entry<T> = Option<(Instant, Arc<T>)>;

/// One cached value, refreshed by at most one task at a time.
struct Slot<T> {
    value: Mutex<Entry<T>>,
    refresh: Arc<AsyncMutex<()>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: Mutex::new(None),
            refresh: Arc::new(AsyncMutex::new(())),
        }
    }
}

/// The cached overview and the expiry series of `/metrics`.
pub(crate) struct OverviewCache {
    ttl: Duration,
    overview: Arc<Slot<FleetOverview>>,
    expiring: Arc<Slot<Vec<ExpiringCertificate>>>,
}

impl OverviewCache {
    pub fn new(ttl: Duration) -> Self {
        OverviewCache {
            ttl,
            overview: Arc::default(),
            expiring: Arc::default(),
        }
    }

    /// The overview, at most `ttl` old (or up to 4 x `ttl` while a refresh runs).
    pub async fn overview(&self, store: &Arc<dyn Store>) -> Result<Arc<FleetOverview>, ApiError> {
        let store = store.clone();
        cached(&self.overview, self.ttl, move || {
            let store = store.clone();
            async move { store.fleet_overview().await }
        })
        .await
    }

    /// Leaves in use expiring within `window`, soonest first, at most `limit`.
    pub async fn expiring(
        &self,
        store: &Arc<dyn Store>,
        window: time::Duration,
        limit: u32,
    ) -> Result<Arc<Vec<ExpiringCertificate>>, ApiError> {
        let store = store.clone();
        cached(&self.expiring, self.ttl, move || {
            let store = store.clone();
            async move { store.expiring_leaves(window, None, limit).await }
        })
        .await
    }
}

/// Age of a cached value, and the value.
fn peek<T>(slot: &Slot<T>) -> Option<(Duration, Arc<T>)> {
    let guard = slot
        .value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard
        .as_ref()
        .map(|(at, value)| (at.elapsed(), value.clone()))
}

async fn cached<T, F, Fut>(
    slot: &Arc<Slot<T>>,
    ttl: Duration,
    compute: F,
) -> Result<Arc<T>, ApiError>
where
    T: Send + Sync + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = certfleet_store::Result<T>> + Send,
{
    if let Some((age, value)) = peek(slot) {
        if age < ttl {
            return Ok(value);
        }
        if age < ttl * STALE_FACTOR {
            // Serve this copy; one background task computes the next.
            if let Ok(guard) = slot.refresh.clone().try_lock_owned() {
                let slot = slot.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    match compute().await {
                        Ok(fresh) => drop(store(&slot, fresh)),
                        Err(error) => tracing::warn!(%error, "overview refresh failed"),
                    }
                });
            }
            return Ok(value);
        }
    }
    let _guard = slot.refresh.lock().await;
    // Someone else may have computed it while this request waited.
    if let Some((age, value)) = peek(slot) {
        if age < ttl {
            return Ok(value);
        }
    }
    let fresh = compute().await?;
    Ok(store(slot, fresh))
}

fn store<T>(slot: &Slot<T>, value: T) -> Arc<T> {
    let value = Arc::new(value);
    let mut guard = slot
        .value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *guard = Some((Instant::now(), value.clone()));
    value
}
