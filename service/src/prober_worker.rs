//! The prober role: lease due endpoints, probe them, record the results in batches.
//!
//! Three stages joined by bounded queues, so probing never waits for the database and the
//! database never sees one statement per probe: a leaser leases a batch whenever the
//! endpoints waiting in memory leave room for one; a dispatcher queues them by address
//! ([`ProbeLines`]) and starts at most `concurrency` probes, each its own task (so that its
//! deadlines keep running while the database is slow), never more than `max_per_address`
//! to one address; and a recorder writes the finished results in batches (up to
//! [`RECORD_BATCH`] per transaction, waiting at most [`RECORD_LINGER`] for one to fill),
//! only while their leases hold (a prober that wakes up after its lease ran out does not
//! overwrite a newer result).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use certfleet_model::{Finding, ProbeResult, ProbeStatus};
use certfleet_prober::{Host, Prober, StartTlsMode, Target};
use certfleet_store::{Lease, LeasedEndpoint, NameSource, Store};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::heartbeat::{self, Announcement, ProbeCounter};
use crate::probe_lines::{Pace, ProbeLines};
use crate::ptr_names::PtrNames;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub worker_id: String,
    pub batch: u32,
    pub concurrency: usize,
    /// How long a lease lasts: a crashed worker's endpoints are due again after it.
    pub lease_for: Duration,
    /// Pause when nothing is due.
    pub idle_poll: Duration,
    /// Probes in flight to one address.
    pub max_per_address: usize,
    /// New connections per second; 0: unpaced.
    pub connections_per_second: u32,
    /// The zones whose endpoints it leases; empty: every zone.
    pub zones: Vec<String>,
    /// How often it announces itself (see [`crate::heartbeat`]).
    pub heartbeat: Duration,
}

/// What one probe task hands the recorder: the lease, the result and the PTR names of its
/// address.
type Finished = (Lease, ProbeResult, Vec<String>);

/// Most results written in one transaction.
const RECORD_BATCH: usize = 256;

/// How long the recorder waits for a batch to fill: a few large transactions cost the
/// database much less than many small ones, and no result waits longer than this.
const RECORD_LINGER: Duration = Duration::from_millis(100);

/// Endpoints waiting at one address, in units of `max_per_address`: two rounds of probes.
/// With the probe itself, a kept endpoint is done within three probe timeouts of its
/// lease, well inside the default lease (four probe timeouts, at least five minutes).
const ROUNDS_WAITING: usize = 2;

/// Runs until `shutdown` is cancelled; in-flight probes are finished and recorded, waiting
/// ones are handed back.
pub async fn run(
    store: Arc<dyn Store>,
    prober: Arc<Prober>,
    ptr_names: Option<Arc<PtrNames>>,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let concurrency = options.concurrency.max(1);
    // Endpoints waiting in memory: two batches, and at least two per slot, so that
    // leasing stops only when the lines in memory can fill every slot twice over.
    let room = (2 * options.batch.max(1) as usize).max(2 * concurrency);
    let waiting = Arc::new(AtomicUsize::new(0));
    let (queue, mut leased) = mpsc::channel::<Vec<LeasedEndpoint>>(1);
    let leaser = tokio::spawn(lease_loop(
        store.clone(),
        options.clone(),
        room,
        waiting.clone(),
        queue,
        shutdown.clone(),
    ));
    let probes = Arc::new(ProbeCounter::default());
    let announcement = Announcement {
        name: options.worker_id.clone(),
        zones: options.zones.clone(),
        every: options.heartbeat,
    };
    let beats = shutdown.child_token();
    let heartbeat = tokio::spawn(heartbeat::run(
        store.clone(),
        announcement,
        probes.clone(),
        beats.clone(),
    ));
    let (finished, to_record) = mpsc::channel(4 * RECORD_BATCH);
    let recorder = tokio::spawn(record_loop(
        store.clone(),
        options.worker_id.clone(),
        to_record,
        probes,
    ));
    let pace = Arc::new(Pace::new(options.connections_per_second));
    let max_waiting = ROUNDS_WAITING * options.max_per_address.max(1);
    let mut lines = ProbeLines::new(options.max_per_address, max_waiting);
    let mut running: JoinSet<(IpAddr, Instant, Finished)> = JoinSet::new();
    let mut leasing = true;
    loop {
        while running.len() < concurrency {
            let Some(endpoint) = lines.start_next() else {
                break;
            };
            let (prober, pace, ptr_names) = (prober.clone(), pace.clone(), ptr_names.clone());
            let span = tracing::info_span!(
                "probe",
                endpoint = endpoint.id.0,
                address = %endpoint.address,
                port = endpoint.port,
                sni = endpoint.sni.as_deref().unwrap_or(""),
            );
            running.spawn(tracing::Instrument::instrument(
                async move {
                    pace.wait().await;
                    let started = Instant::now();
                    let result = probe_one(&prober, &endpoint).await;
                    // The PTR name is a name to present of the endpoint probed without one,
                    // once it is known to serve TLS.
                    let names = match &ptr_names {
                        Some(ptr) if endpoint.sni.is_none() && result.status == ProbeStatus::Ok => {
                            ptr.of(endpoint.address).await
                        }
                        _ => Vec::new(),
                    };
                    (endpoint.address, started, (endpoint.lease(), result, names))
                },
                span,
            ));
        }
        waiting.store(lines.waiting(), Ordering::Relaxed);
        if !leasing && running.is_empty() {
            break;
        }
        tokio::select! {
            batch = leased.recv(), if leasing => match batch {
                Some(batch) => {
                    let handed_back: Vec<(Lease, OffsetDateTime)> = batch
                        .into_iter()
                        .filter_map(|endpoint| lines.push(endpoint).err())
                        .map(|(endpoint, wait)| {
                            // An estimate from past probes at the address: never trusted
                            // beyond half a lease (a slow spell must not park endpoints
                            // for long).
                            (endpoint.lease(), due_in(wait.min(options.lease_for / 2)))
                        })
                        .collect();
                    hand_back(&store, &options.worker_id, handed_back, "its address is busy");
                }
                None => {
                    // Shutting down: what has not started goes back, due now.
                    leasing = false;
                    let now = OffsetDateTime::now_utc();
                    let left = lines
                        .take_waiting()
                        .iter()
                        .map(|endpoint| (endpoint.lease(), now))
                        .collect();
                    hand_back(&store, &options.worker_id, left, "shutting down");
                }
            },
            Some(joined) = running.join_next() => match joined {
                Ok((address, started, result)) => {
                    lines.done(address, started);
                    if finished.send(result).await.is_err() {
                        break;
                    }
                }
                // Never expected (a probe does not panic); the endpoint's lease expires
                // and it is probed again. Its address keeps one slot less until the
                // lines empty.
                Err(error) => tracing::error!(%error, "a probe task failed"),
            },
        }
    }
    drop(finished);
    let _ = recorder.await;
    let _ = leaser.await;
    beats.cancel();
    let _ = heartbeat.await;
}

fn due_in(wait: Duration) -> OffsetDateTime {
    let wait = time::Duration::try_from(wait).unwrap_or(time::Duration::hours(1));
    OffsetDateTime::now_utc() + wait.min(time::Duration::hours(1))
}

/// Ends leases of endpoints that were not probed, so that they are due again at the given
/// times (in the background: the dispatcher never waits for the database). If that fails
/// the leases simply expire.
fn hand_back(
    store: &Arc<dyn Store>,
    worker: &str,
    leases: Vec<(Lease, OffsetDateTime)>,
    why: &'static str,
) {
    if leases.is_empty() {
        return;
    }
    let (store, worker) = (store.clone(), worker.to_owned());
    tokio::spawn(async move {
        match store.release_leases(&worker, &leases).await {
            Ok(released) => tracing::debug!(released, why, "leases handed back"),
            Err(error) => {
                tracing::warn!(%error, leases = leases.len(), why, "cannot hand leases back; they will expire")
            }
        }
    });
}

/// Writes what has finished, in batches of up to [`RECORD_BATCH`], until every sender is
/// gone. A batch waits at most [`RECORD_LINGER`] to fill up.
async fn record_loop(
    store: Arc<dyn Store>,
    worker: String,
    mut results: mpsc::Receiver<Finished>,
    probes: Arc<ProbeCounter>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while results.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + RECORD_LINGER;
        while batch.len() < RECORD_BATCH {
            let room = RECORD_BATCH - batch.len();
            // recv_many is cancel-safe: nothing is lost when the deadline passes.
            match tokio::time::timeout_at(deadline, results.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let recorded = record(&*store, &worker, std::mem::take(&mut batch)).await;
        probes.add(recorded);
    }
}

async fn lease_loop(
    store: Arc<dyn Store>,
    options: WorkerOptions,
    room: usize,
    waiting: Arc<AtomicUsize>,
    queue: mpsc::Sender<Vec<LeasedEndpoint>>,
    shutdown: CancellationToken,
) {
    let lease_for =
        time::Duration::try_from(options.lease_for).unwrap_or(time::Duration::minutes(10));
    let mut pause = options.idle_poll;
    while !shutdown.is_cancelled() {
        // Lease only when the endpoints waiting in memory leave room for a whole batch,
        // so leases are not spent waiting there.
        if waiting.load(Ordering::Relaxed) + options.batch as usize > room {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                _ = shutdown.cancelled() => break,
            }
        }
        let (worker, zones) = (&options.worker_id, &options.zones);
        let lease = store.lease_due_in_zones(worker, zones, options.batch, lease_for);
        let span = tracing::info_span!("lease", worker = %options.worker_id, batch = options.batch);
        match tracing::Instrument::instrument(lease, span).await {
            Ok(endpoints) if !endpoints.is_empty() => {
                pause = options.idle_poll;
                if queue.send(endpoints).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot lease endpoints; retrying");
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

pub(crate) async fn probe_one(prober: &Prober, endpoint: &LeasedEndpoint) -> ProbeResult {
    // Checked when the config was read; a value stored by another version falls back to
    // the port's protocol.
    let starttls = endpoint
        .starttls
        .as_deref()
        .and_then(|mode| mode.parse::<StartTlsMode>().ok());
    let target = Target {
        host: Host::Ip(endpoint.address),
        port: endpoint.port,
        sni: endpoint.sni.clone(),
        raw: endpoint.target(),
        starttls,
    };
    let mut result = prober
        .probe_address(&target, SocketAddr::new(endpoint.address, endpoint.port))
        .await;
    drop_guessed_mismatch(endpoint.sni_source, &mut result);
    result
}

/// A name the service guessed (the reporting host's name, the address's PTR name) is one
/// nobody need use for the socket: a certificate that does not name it is no finding.
/// Names from certificates, configuration, DNS and reports keep `hostname_mismatch`.
fn drop_guessed_mismatch(source: Option<NameSource>, result: &mut ProbeResult) {
    if source.is_some_and(NameSource::is_guessed) {
        result
            .findings
            .retain(|finding| *finding != Finding::HostnameMismatch);
    }
}

/// Writes one chunk of results; retries while the database is unavailable, because the
/// leases keep the endpoints ours for a while. A result whose lease has ended or passed
/// to another prober meanwhile is stale: the store drops it, and it is logged and counted.
/// Returns how many results were recorded.
async fn record(store: &dyn Store, worker: &str, chunk: Vec<Finished>) -> usize {
    let mut results = Vec::with_capacity(chunk.len());
    let mut learnt = Vec::new();
    for (lease, result, names) in chunk {
        learnt.extend(names.into_iter().map(|name| (lease.endpoint, name)));
        results.push((lease, result));
    }
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=8 {
        match store
            .record_leased_probe_results(worker, &results, &learnt)
            .await
        {
            Ok(recorded) => {
                if !recorded.stale.is_empty() {
                    let endpoints: Vec<i64> = recorded.stale.iter().map(|id| id.0).collect();
                    tracing::warn!(
                        stale = recorded.stale.len(),
                        ?endpoints,
                        "stale probe results dropped: their leases ended or passed to another prober"
                    );
                }
                log_round(&results, recorded.stale.len());
                return results.len() - recorded.stale.len();
            }
            Err(error) if error.is_unavailable() && attempt < 8 => {
                tracing::warn!(%error, attempt, "cannot record probe results; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(error) => {
                tracing::error!(%error, results = results.len(), "probe results dropped; the endpoints will be leased again");
                return 0;
            }
        }
    }
    0
}

/// One line per recorded batch, for the operator: how many were probed, how many answered
/// with TLS, how many could not be reached at all, and how many were stale (not written).
fn log_round(chunk: &[(Lease, ProbeResult)], stale: usize) {
    let count = |wanted: &[ProbeStatus]| {
        chunk
            .iter()
            .filter(|(_, result)| wanted.contains(&result.status))
            .count()
    };
    tracing::info!(
        probed = chunk.len(),
        ok = count(&[ProbeStatus::Ok]),
        tls_error = count(&[ProbeStatus::TlsError]),
        not_tls = count(&[ProbeStatus::NotTls]),
        unreachable = count(&[
            ProbeStatus::Refused,
            ProbeStatus::Timeout,
            ProbeStatus::Unreachable
        ]),
        stale,
        "probe round recorded"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatching() -> ProbeResult {
        ProbeResult {
            target: "10.0.0.1:443@web-1".into(),
            address: Some("10.0.0.1:443".into()),
            sni: Some("web-1".into()),
            status: ProbeStatus::Ok,
            error: None,
            probed_at: OffsetDateTime::UNIX_EPOCH,
            elapsed_ms: 1,
            starttls: None,
            tls: None,
            mtls: None,
            chain: Vec::new(),
            findings: vec![Finding::HostnameMismatch, Finding::SelfSigned],
        }
    }

    #[test]
    fn only_guessed_names_lose_hostname_mismatch() {
        for (source, kept) in [
            (Some(NameSource::HostName), false),
            (Some(NameSource::Ptr), false),
            (Some(NameSource::Config), true),
            (Some(NameSource::Certificate), true),
            (Some(NameSource::Dns), true),
            (Some(NameSource::Report), true),
            (None, true),
        ] {
            let mut result = mismatching();
            drop_guessed_mismatch(source, &mut result);
            assert_eq!(
                result.findings.contains(&Finding::HostnameMismatch),
                kept,
                "{source:?}"
            );
            assert!(result.findings.contains(&Finding::SelfSigned));
        }
    }
}
