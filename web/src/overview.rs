//! The fleet overview, kept in memory: computing it is one pass over every active
//! endpoint (seconds at fleet size), so the dashboard, the mTLS summary and `/metrics`
//! share one copy that is at most `ttl` old, refreshed in the background while a
//! slightly older copy keeps answering. Only one refresh runs at a time, and a copy
//! counts as fresh for at least ten times what it took to compute, so that however large
//! the fleet, refreshing never takes more than a tenth of one database connection's time
//! (at 3,000,000 endpoints a pass takes several seconds).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use certfleet_store::{ExpiringCertificate, FleetOverview, ReadModel};
use tokio::sync::Mutex as AsyncMutex;

use crate::ApiError;

/// A copy stays fresh for at least this many times its computation took.
const COST_FACTOR: u32 = 10;

/// A copy older than its freshness times this is not served while a new one is computed: the
/// caller waits instead.
const STALE_FACTOR: u32 = 4;

/// When a value was computed, how long that took, and the value.
type Entry<T> = Option<(Instant, Duration, Arc<T>)>;

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
    pub async fn overview(
        &self,
        store: &Arc<dyn ReadModel>,
    ) -> Result<Arc<FleetOverview>, ApiError> {
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
        store: &Arc<dyn ReadModel>,
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

/// Age of a cached value, how long it stays fresh, and the value.
fn peek<T>(slot: &Slot<T>, ttl: Duration) -> Option<(Duration, Duration, Arc<T>)> {
    let guard = slot
        .value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.as_ref().map(|(at, cost, value)| {
        let fresh_for = if ttl.is_zero() {
            ttl
        } else {
            ttl.max(*cost * COST_FACTOR)
        };
        (at.elapsed(), fresh_for, value.clone())
    })
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
    if let Some((age, fresh_for, value)) = peek(slot, ttl) {
        if age < fresh_for {
            return Ok(value);
        }
        if age < fresh_for * STALE_FACTOR {
            // Serve this copy; one background task computes the next.
            if let Ok(guard) = slot.refresh.clone().try_lock_owned() {
                let slot = slot.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let started = Instant::now();
                    match compute().await {
                        Ok(fresh) => drop(store(&slot, started, fresh)),
                        Err(error) => tracing::warn!(%error, "overview refresh failed"),
                    }
                });
            }
            return Ok(value);
        }
    }
    let _guard = slot.refresh.lock().await;
    // Someone else may have computed it while this request waited.
    if let Some((age, fresh_for, value)) = peek(slot, ttl) {
        if age < fresh_for {
            return Ok(value);
        }
    }
    let started = Instant::now();
    let fresh = compute().await?;
    Ok(store(slot, started, fresh))
}

fn store<T>(slot: &Slot<T>, started: Instant, value: T) -> Arc<T> {
    let value = Arc::new(value);
    let mut guard = slot
        .value
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *guard = Some((Instant::now(), started.elapsed(), value.clone()));
    value
}
