//! A prober announces itself every `probe.heartbeat`: its name, the zones it serves, its
//! version and how many probes per second it recorded since the last beat. The API lists
//! the probers from these beats, and a zone whose due endpoints no live prober serves is
//! shown on the dashboard and in `/metrics` (docs/scale-out.md, "Zones").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use certfleet_store::{ProberBeat, Store};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A prober counts as live for this many heartbeats after its last one: one late beat
/// (a busy database) does not make it look dead.
const BEATS_LIVE: u32 = 3;

/// Probes recorded by this process, counted by the recorder and read by the heartbeat.
#[derive(Debug, Default)]
pub struct ProbeCounter(AtomicU64);

impl ProbeCounter {
    pub fn add(&self, probes: usize) {
        self.0.fetch_add(probes as u64, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the heartbeat says, besides the rate.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub name: String,
    pub zones: Vec<String>,
    pub every: Duration,
}

/// Beats until `shutdown` is cancelled, then says once that it is no longer live. A beat
/// that cannot be written is logged and the next one tried: the prober goes on probing.
pub async fn run(
    store: Arc<dyn Store>,
    announcement: Announcement,
    probes: Arc<ProbeCounter>,
    shutdown: CancellationToken,
) {
    let every = announcement.every.max(Duration::from_millis(100));
    let live_for = time::Duration::try_from(every * BEATS_LIVE).unwrap_or(time::Duration::MINUTE);
    let mut beat = ProberBeat {
        name: announcement.name,
        zones: announcement.zones,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: OffsetDateTime::now_utc(),
        live_for,
        probes_per_second: 0.0,
    };
    let (mut since, mut counted) = (Instant::now(), probes.total());
    loop {
        if let Err(error) = store.announce_prober(&beat).await {
            tracing::warn!(%error, "cannot announce this prober; trying again at the next beat");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => break,
        }
        let total = probes.total();
        let elapsed = since.elapsed().as_secs_f64().max(0.001);
        beat.probes_per_second = (total - counted) as f64 / elapsed;
        (since, counted) = (Instant::now(), total);
    }
    // Stopping: not live from now on, so the zone's queue is seen without waiting.
    beat.live_for = time::Duration::ZERO;
    if let Err(error) = store.announce_prober(&beat).await {
        tracing::debug!(%error, "cannot announce that this prober stops");
    }
}
