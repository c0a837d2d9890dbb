//! The prober role: lease due endpoints, probe them, record the results in batches.
//!
//! Three stages joined by bounded queues, so probing never waits for the database and the
//! database never sees one statement per probe: a leaser keeps the queue of leased
//! endpoints topped up, `concurrency` probes run at once (each its own task, so that its
//! deadlines keep running while the database is slow), and a recorder writes the finished
//! results in batches (up to [`RECORD_BATCH`] per transaction, waiting at most
//! [`RECORD_LINGER`] for one to fill).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certfleet_model::{ProbeResult, ProbeStatus};
use certfleet_prober::{Host, Prober, StartTlsMode, Target};
use certfleet_store::{EndpointId, LeasedEndpoint, Store};
use futures::stream::StreamExt;
use tokio::sync::{mpsc, watch};

use super::probe_gate::ProbeGate;
use super::ptr_names::PtrNames;

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
}

/// What one probe task hands the recorder: the result and the PTR names of its address.
type Finished = (EndpointId, ProbeResult, Vec<String>);

/// Most results written in one transaction.
const RECORD_BATCH: usize = 256;

/// How long the recorder waits for a batch to fill: a few large transactions cost the
/// database much less than many small ones, and no result waits longer than this.
const RECORD_LINGER: Duration = Duration::from_millis(100);

/// Runs until `shutdown` turns true; in-flight probes are finished and recorded.
pub async fn run(
    store: Arc<dyn Store>,
    prober: Arc<Prober>,
    ptr_names: Option<Arc<PtrNames>>,
    options: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) {
    let gate = Arc::new(ProbeGate::new(
        options.max_per_address,
        options.connections_per_second,
    ));
    // Room for two batches, so the next lease arrives before the probes run dry.
    let (queue, leased) = mpsc::channel::<LeasedEndpoint>(2 * options.batch.max(1) as usize);
    let leaser = tokio::spawn(lease_loop(
        store.clone(),
        options.clone(),
        queue,
        shutdown.clone(),
    ));
    let (finished, to_record) = mpsc::channel(4 * RECORD_BATCH);
    let recorder = tokio::spawn(record_loop(store, to_record));
    // Each probe runs as its own task: a probe polled only by this loop would stand still
    // (its timeouts still running) whenever the loop waits for the recorder.
    let results = tokio_stream_from(leased)
        .map(|endpoint| {
            let (prober, gate, ptr_names) = (prober.clone(), gate.clone(), ptr_names.clone());
            tokio::spawn(async move {
                let result = {
                    let _pass = gate.enter(endpoint.address).await;
                    probe_one(&prober, &endpoint).await
                };
                // The PTR name is a name to present of the endpoint probed without one,
                // once it is known to serve TLS.
                let names = match &ptr_names {
                    Some(ptr) if endpoint.sni.is_none() && result.status == ProbeStatus::Ok => {
                        ptr.of(endpoint.address).await
                    }
                    _ => Vec::new(),
                };
                (endpoint.id, result, names)
            })
        })
        .buffer_unordered(options.concurrency.max(1));
    futures::pin_mut!(results);
    while let Some(joined) = results.next().await {
        match joined {
            Ok(result) => {
                if finished.send(result).await.is_err() {
                    break;
                }
            }
            // The endpoint's lease expires and it is probed again.
            Err(error) => tracing::error!(%error, "a probe task failed"),
        }
    }
    drop(finished);
    let _ = recorder.await;
    let _ = leaser.await;
}

/// Writes what has finished, in batches of up to [`RECORD_BATCH`], until every sender is
/// gone. A batch waits at most [`RECORD_LINGER`] to fill up.
async fn record_loop(store: Arc<dyn Store>, mut results: mpsc::Receiver<Finished>) {
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
        record(&*store, std::mem::take(&mut batch)).await;
    }
}

async fn lease_loop(
    store: Arc<dyn Store>,
    options: WorkerOptions,
    queue: mpsc::Sender<LeasedEndpoint>,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease_for =
        time::Duration::try_from(options.lease_for).unwrap_or(time::Duration::minutes(10));
    let mut pause = options.idle_poll;
    while !*shutdown.borrow() {
        // Lease only when the queue has room for a whole batch, so leases are not spent
        // waiting in memory.
        if queue.capacity() < options.batch as usize {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                _ = shutdown.changed() => break,
            }
        }
        match store
            .lease_due_endpoints(&options.worker_id, options.batch, lease_for)
            .await
        {
            Ok(endpoints) if !endpoints.is_empty() => {
                pause = options.idle_poll;
                for endpoint in endpoints {
                    if queue.send(endpoint).await.is_err() {
                        return;
                    }
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
            _ = shutdown.changed() => break,
        }
    }
}

async fn probe_one(prober: &Prober, endpoint: &LeasedEndpoint) -> ProbeResult {
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
    prober
        .probe_address(&target, SocketAddr::new(endpoint.address, endpoint.port))
        .await
}

/// Writes one chunk of results; retries while the database is unavailable, because the
/// leases keep the endpoints ours for a while.
async fn record(store: &dyn Store, chunk: Vec<Finished>) {
    let mut results = Vec::with_capacity(chunk.len());
    let mut learnt = Vec::new();
    for (id, result, names) in chunk {
        results.push((id, result));
        learnt.extend(names.into_iter().map(|name| (id, name)));
    }
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=8 {
        match store
            .record_probe_results_with_names(&results, &learnt)
            .await
        {
            Ok(_) => {
                log_round(&results);
                return;
            }
            Err(error) if error.is_unavailable() && attempt < 8 => {
                tracing::warn!(%error, attempt, "cannot record probe results; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(error) => {
                tracing::error!(%error, results = results.len(), "probe results dropped; the endpoints will be leased again");
                return;
            }
        }
    }
}

/// One line per recorded batch, for the operator: how many were probed, how many answered
/// with TLS, and how many could not be reached at all.
fn log_round(chunk: &[(EndpointId, ProbeResult)]) {
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
        "probe round recorded"
    );
}

/// An mpsc receiver as a stream (ends when every sender is gone).
fn tokio_stream_from<T: Send + 'static>(
    receiver: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
