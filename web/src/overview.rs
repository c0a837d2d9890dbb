//! The fleet overview, kept in memory: computing it is one pass over every active
//! endpoint (seconds at fleet size), so the dashboard, the mTLS summary and `/metrics`
//! share one copy that is at most `ttl` old, refreshed in the background while a
//! slightly older copy keeps answering. Only one refresh runs at a time, and a copy
//! counts as fresh for at least ten times what it took to compute, so that however large
//! the fleet, refreshing never takes more than a tenth of one database connection's time
//! (at 3,000,000 endpoints a pass takes several seconds).
//!
//! Each computed overview is also saved in the database (at most once a minute), and a
//! process that starts answers its first request with the saved one when it is under an
//! hour old, computing its own in the background: the first dashboard after a restart
//! does not wait for the pass (bench/lookup.sh: "first dashboard").

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

/// A saved overview older than this is not shown after a start: the first request waits
/// for a fresh one instead (figures from a service that was down that long would mislead,
/// and `/metrics` would export them as current).
const SAVED_MAX_AGE: time::Duration = time::Duration::hours(1);

/// How often an overview is saved at most, whatever the `ttl`: each save writes the whole
/// overview (hundreds of KiB with thousands of apps).
const SAVE_EVERY: Duration = Duration::from_secs(60);

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
    /// Set once the saved overview was looked for (the first request of the process).
    seeded: tokio::sync::OnceCell<()>,
    /// When this process last saved an overview.
    saved_at: Arc<Mutex<Option<Instant>>>,
}

impl OverviewCache {
    pub fn new(ttl: Duration) -> Self {
        OverviewCache {
            ttl,
            overview: Arc::default(),
            expiring: Arc::default(),
            seeded: tokio::sync::OnceCell::new(),
            saved_at: Arc::default(),
        }
    }

    /// The overview, at most `ttl` old (or up to 4 x `ttl` while a refresh runs; on the
    /// first request, the saved one while this process computes its own).
    pub async fn overview(
        &self,
        store: &Arc<dyn ReadModel>,
    ) -> Result<Arc<FleetOverview>, ApiError> {
        self.seeded.get_or_init(|| self.seed(store)).await;
        let store = store.clone();
        let saved_at = self.saved_at.clone();
        cached(&self.overview, self.ttl, move || {
            let (store, saved_at) = (store.clone(), saved_at.clone());
            async move {
                let overview = store.fleet_overview().await?;
                save(&store, &saved_at, &overview).await;
                Ok(overview)
            }
        })
        .await
    }

    /// Puts the saved overview in the slot, already stale: served at once (it says when
    /// it was computed) while the request that finds it starts the background refresh.
    async fn seed(&self, store: &Arc<dyn ReadModel>) {
        if self.ttl.is_zero() {
            // Nothing is cached, so nothing saved is served either.
            return;
        }
        let saved = match store.saved_overview().await {
            Ok(Some(saved)) => saved,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read the saved fleet overview");
                return;
            }
        };
        let age = time::OffsetDateTime::now_utc() - saved.computed_at;
        if age.abs() > SAVED_MAX_AGE {
            return;
        }
        let stale_since = Instant::now()
            .checked_sub(self.ttl)
            .unwrap_or_else(Instant::now);
        let mut guard = self
            .overview
            .value
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            *guard = Some((stale_since, Duration::ZERO, Arc::new(saved)));
        }
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

/// Saves a freshly computed overview unless this process saved one within [`SAVE_EVERY`];
/// a failure is logged (the overview is still served).
async fn save(
    store: &Arc<dyn ReadModel>,
    saved_at: &Mutex<Option<Instant>>,
    overview: &FleetOverview,
) {
    {
        let mut last = saved_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.is_some_and(|at| at.elapsed() < SAVE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    if let Err(error) = store.save_overview(overview).await {
        tracing::warn!(%error, "could not save the fleet overview");
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
