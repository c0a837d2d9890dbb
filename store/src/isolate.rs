//! One bad probe result never costs the others: a batch whose write fails for a reason
//! other than the database being unavailable is split in halves, and the halves written
//! again, until every good result is recorded. A result that fails alone is recorded as a
//! `tls_error` that says why it could not be stored, so that its endpoint is not leased
//! again and again with the same poison.

use async_trait::async_trait;
use certfleet_model::{ProbeResult, ProbeStatus};

use crate::error::Result;
use crate::fence::Fence;
use crate::records::{EndpointId, Recorded};

type Results = [(EndpointId, ProbeResult)];
type Names = [(EndpointId, String)];

/// A backend's write of one batch of probe results in one transaction.
#[async_trait]
pub(crate) trait RecordBatch: Sync {
    async fn record_batch(
        &self,
        results: &Results,
        fence: Option<&Fence<'_>>,
        learnt: &Names,
    ) -> Result<Recorded>;
}

/// Records `results` (and the learnt names of their endpoints) with `store`, one
/// transaction per batch, under `fence` when the results were probed under leases, splitting on non-retryable errors as described above. An
/// unavailable database stops at once with its error: the caller retries the whole batch,
/// and recording again what was already recorded changes nothing.
pub(crate) async fn record_isolating(
    store: &impl RecordBatch,
    results: &Results,
    fence: Option<&Fence<'_>>,
    learnt: &Names,
) -> Result<Recorded> {
    let mut recorded = Recorded::default();
    // Ranges still to write, the first half last so that it is written first.
    let mut pending = vec![(0, results.len())];
    while let Some((start, end)) = pending.pop() {
        if start == end {
            continue;
        }
        let part = &results[start..end];
        let names = if part.len() == results.len() {
            learnt.to_vec()
        } else {
            names_of(part, learnt)
        };
        let error = match store.record_batch(part, fence, &names).await {
            Ok(done) => {
                add(&mut recorded, done);
                continue;
            }
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => error,
        };
        if part.len() > 1 {
            let middle = start + part.len() / 2;
            pending.push((middle, end));
            pending.push((start, middle));
            continue;
        }
        let (endpoint, result) = &part[0];
        tracing::warn!(endpoint = endpoint.0, target = %result.target, %error, "probe result could not be stored; recorded as an error");
        let replacement = unrecordable(result, &error.to_string());
        match store
            .record_batch(&[(*endpoint, replacement)], fence, &[])
            .await
        {
            Ok(done) => add(&mut recorded, done),
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => {
                tracing::error!(endpoint = endpoint.0, %error, "not even the error of a probe result could be stored; its lease will expire");
            }
        }
    }
    Ok(recorded)
}

fn add(total: &mut Recorded, part: Recorded) {
    total.recorded += part.recorded;
    total.stale.extend(part.stale);
}

/// The learnt names of the endpoints in `part`.
fn names_of(part: &Results, learnt: &Names) -> Vec<(EndpointId, String)> {
    if learnt.is_empty() {
        return Vec::new();
    }
    learnt
        .iter()
        .filter(|(id, _)| part.iter().any(|(endpoint, _)| endpoint == id))
        .cloned()
        .collect()
}

/// What is recorded in place of a result the store refused: when and what was probed, no
/// chain, and the reason.
fn unrecordable(result: &ProbeResult, reason: &str) -> ProbeResult {
    const MAX_REASON: usize = 500;
    let mut reason: String = reason.chars().take(MAX_REASON).collect();
    reason.insert_str(0, "the probe result could not be stored: ");
    ProbeResult {
        target: result.target.clone(),
        address: result.address.clone(),
        sni: result.sni.clone(),
        status: ProbeStatus::TlsError,
        error: Some(reason),
        probed_at: result.probed_at,
        elapsed_ms: result.elapsed_ms,
        starttls: result.starttls.clone(),
        tls: None,
        mtls: None,
        chain: Vec::new(),
        findings: Vec::new(),
    }
}
