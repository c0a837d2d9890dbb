//! What keeps one prober process polite: at most `max_per_address` probes in flight to
//! one address (a host with hundreds of ports or names is never hammered by a round), and
//! optionally a pace of new connections per second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub struct ProbeGate {
    max_per_address: usize,
    /// Semaphores of the addresses with probes in flight; an entry is dropped when its last
    /// probe ends, so the map holds at most `concurrency` entries.
    addresses: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    /// The pause between two connections, and when the next may start.
    pace: Option<(Duration, Mutex<Instant>)>,
}

/// Held while one probe runs.
pub struct Pass<'a> {
    gate: &'a ProbeGate,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl ProbeGate {
    pub fn new(max_per_address: usize, connections_per_second: u32) -> ProbeGate {
        let pace = (connections_per_second > 0).then(|| {
            let every = Duration::from_secs(1) / connections_per_second;
            (every, Mutex::new(Instant::now()))
        });
        ProbeGate {
            max_per_address: max_per_address.max(1),
            addresses: Mutex::new(HashMap::new()),
            pace,
        }
    }

    /// Waits for room at `address`, then for the pace.
    pub async fn enter(&self, address: IpAddr) -> Pass<'_> {
        let semaphore = {
            let mut addresses = lock(&self.addresses);
            let semaphore = addresses
                .entry(address)
                .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_address)));
            semaphore.clone()
        };
        // Never closed: the gate owns every semaphore.
        let permit = match semaphore.acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("probe gate semaphores are never closed"),
        };
        if let Some((every, next)) = &self.pace {
            let slot = {
                let mut next = lock(next);
                let slot = (*next).max(Instant::now());
                *next = slot + *every;
                slot
            };
            tokio::time::sleep_until(slot).await;
        }
        Pass {
            gate: self,
            address,
            _permit: permit,
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.addresses).len()
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut addresses = lock(&self.gate.addresses);
        // Two references left, the map's and this pass's permit's (dropped after this):
        // no other probe runs or waits at this address.
        let idle = addresses
            .get(&self.address)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) <= 2);
        if idle {
            addresses.remove(&self.address);
        }
    }
}

/// A poisoned lock only means another probe task panicked; the map is still sound.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn at_most_max_per_address_run_at_once_and_the_map_empties() {
        let gate = Arc::new(ProbeGate::new(3, 0));
        let address: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for n in 0..40 {
            let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
            let to = if n % 10 == 0 { other } else { address };
            tasks.push(tokio::spawn(async move {
                let _pass = gate.enter(to).await;
                if to == address {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                if to == address {
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.expect("a gated task");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(gate.tracked(), 0, "addresses without probes are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn connections_are_paced() {
        let gate = ProbeGate::new(100, 10);
        let started = Instant::now();
        for n in 0..5u8 {
            let _pass = gate.enter([10, 0, 0, n].into()).await;
        }
        // Five connections at ten per second: the fifth starts 400 ms after the first.
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }
}
