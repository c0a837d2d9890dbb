//! Confirm before mail: an endpoint whose last probe is older than
//! `notify.confirm_within` is probed again before a digest tells its owner about the
//! certificate it served then. A certificate replaced since is no news; a probe that fails
//! makes the mail say when the certificate was last seen, not that it is served.

use std::fmt::Debug;

use async_trait::async_trait;
use certfleet_store::EndpointId;
use serde::Serialize;

/// Probes endpoints now, outside their schedule, and records what they serve.
#[async_trait]
pub trait Confirm: Send + Sync + Debug {
    /// Probes these endpoints and records the results; returns within `wait`, whatever
    /// is left unprobed by then. Never fails: what could not be probed is `skipped`.
    async fn confirm(&self, endpoints: Vec<EndpointId>, wait: std::time::Duration) -> Confirmed;
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confirmed {
    /// Endpoints probed again and recorded.
    pub probed: usize,
    /// Of those, the probes that failed (the mail says when the certificate was last
    /// seen).
    pub failed: usize,
    /// Endpoints not probed: a prober held them at the time, the wait ran out, or the
    /// results could not be recorded. Their mail rests on their last probe.
    pub skipped: usize,
}

impl Confirmed {
    /// Adds another confirmation's counts.
    pub fn add(&mut self, other: Confirmed) {
        self.probed += other.probed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}
