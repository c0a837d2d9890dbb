//! The notifier's [`Confirm`]: probes the endpoints a mail would be about, in this
//! process, under leases (a prober elsewhere never probes one at the same time, and a
//! result that comes back after its lease passed to someone else is dropped like any stale
//! one), and records what they serve before the notifier decides again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use certfleet_model::ProbeStatus;
use certfleet_notifier::{Confirm, Confirmed};
use certfleet_prober::Prober;
use certfleet_store::{EndpointId, Lease, Store};
use futures::StreamExt;
use tokio::time::Instant;

use crate::prober_worker::probe_one;

/// The lease outlives the wait by this much, so that results probed just inside the wait
/// are still recorded under it.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Probes in this process, `concurrency` at a time.
pub struct ProbeBeforeMail {
    store: Arc<dyn Store>,
    prober: Arc<Prober>,
    worker: String,
    concurrency: usize,
}

impl std::fmt::Debug for ProbeBeforeMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeBeforeMail")
            .field("worker", &self.worker)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl ProbeBeforeMail {
    /// Leases as `worker` (make it unique to this process).
    pub fn new(
        store: Arc<dyn Store>,
        prober: Arc<Prober>,
        worker: String,
        concurrency: usize,
    ) -> Self {
        ProbeBeforeMail {
            store,
            prober,
            worker,
            concurrency: concurrency.max(1),
        }
    }
}

#[async_trait]
impl Confirm for ProbeBeforeMail {
    async fn confirm(&self, endpoints: Vec<EndpointId>, wait: Duration) -> Confirmed {
        let asked = endpoints.len();
        let lease_for =
            time::Duration::try_from(wait + LEASE_MARGIN).unwrap_or(time::Duration::minutes(5));
        let leased = match self
            .store
            .lease_endpoints(&self.worker, &endpoints, lease_for)
            .await
        {
            Ok(leased) => leased,
            Err(error) => {
                tracing::warn!(%error, "cannot lease endpoints to probe before mail");
                return Confirmed {
                    skipped: asked,
                    ..Confirmed::default()
                };
            }
        };
        let deadline = Instant::now() + wait;
        let prober = &self.prober;
        let mut probes = futures::stream::iter(leased)
            .map(|endpoint| async move {
                let result = tokio::time::timeout_at(deadline, probe_one(prober, &endpoint)).await;
                (endpoint.lease(), result.ok())
            })
            .buffer_unordered(self.concurrency);
        let (mut results, mut unprobed) = (Vec::new(), Vec::new());
        while let Some((lease, result)) = probes.next().await {
            match result {
                Some(result) => results.push((lease, result)),
                None => unprobed.push(lease),
            }
        }
        let failed = results
            .iter()
            .filter(|(_, result)| result.status != ProbeStatus::Ok)
            .count();
        let probed = match self
            .store
            .record_leased_probe_results(&self.worker, &results, &[])
            .await
        {
            Ok(recorded) => usize::try_from(recorded.recorded).unwrap_or(usize::MAX),
            Err(error) => {
                tracing::warn!(%error, "cannot record the probes made before mail");
                unprobed.extend(results.iter().map(|(lease, _)| *lease));
                0
            }
        };
        self.hand_back(unprobed).await;
        Confirmed {
            probed,
            failed: if probed == 0 { 0 } else { failed },
            skipped: asked.saturating_sub(probed),
        }
    }
}

impl ProbeBeforeMail {
    /// Leases not probed in time are due again at once: the scheduled probers take them.
    async fn hand_back(&self, leases: Vec<Lease>) {
        if leases.is_empty() {
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        let due: Vec<(Lease, time::OffsetDateTime)> =
            leases.into_iter().map(|lease| (lease, now)).collect();
        if let Err(error) = self.store.release_leases(&self.worker, &due).await {
            tracing::warn!(%error, leases = due.len(), "cannot hand leases back; they will expire");
        }
    }
}
