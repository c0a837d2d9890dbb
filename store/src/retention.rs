//! Retention (`[retention]`, docs/store.md): what the store deletes once it is old enough,
//! in bounded batches, so that its size follows the fleet and not the fleet's history.
//! A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers it.
//!
//! What is never pruned: what an active endpoint serves now (its current observation, and
//! every certificate of that chain), certificates a pending notification is about, tokens,
//! mutes and mTLS snapshots (rotations age out with the observations). The SQL is in
//! `write/prune.rs`.

use async_trait::async_trait;
use time::Duration;

use crate::error::Result;

/// Rows of each kind one batch deletes at most, unless a policy asks for fewer.
pub const DEFAULT_BATCH: usize = 1_000;

/// The most rows of each kind one batch may delete: a batch is one transaction, and on
/// SQLite it holds the write lock while it runs.
pub const MAX_BATCH: usize = 100_000;

/// What to prune, by age (`None`: keep that kind forever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Certificates that no active endpoint served for this long go, with the observations
    /// whose chain holds them, those chains, their names and their finished notifications.
    pub certificates: Option<Duration>,
    /// History older than this is compacted to the changes: of an endpoint's observations
    /// last seen before then (not its current one), one per leaf is kept (the latest,
    /// reaching back to the first time that leaf was seen there); the others go.
    pub observations: Option<Duration>,
    /// Endpoints retired this long ago go (with their observations and claims), then the
    /// hosts that stopped reporting this long ago and have no endpoint left, with their
    /// claims, and osquery nodes silent as long.
    pub hosts: Option<Duration>,
    /// Rows of each kind per batch (one transaction), 1 to [`MAX_BATCH`].
    pub batch: usize,
}

impl Default for RetentionPolicy {
    /// Keeps everything; batches of [`DEFAULT_BATCH`].
    fn default() -> Self {
        RetentionPolicy {
            certificates: None,
            observations: None,
            hosts: None,
            batch: DEFAULT_BATCH,
        }
    }
}

impl RetentionPolicy {
    /// Whether the policy prunes anything at all.
    pub fn prunes(&self) -> bool {
        self.certificates.is_some() || self.observations.is_some() || self.hosts.is_some()
    }
}

/// Rows deleted, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCounts {
    /// Certificates.
    pub certificates: u64,
    /// Observations (with their chain links): compacted, or gone with a certificate or an
    /// endpoint.
    pub observations: u64,
    /// Retired endpoints.
    pub endpoints: u64,
    /// Hosts and osquery nodes.
    pub hosts: u64,
}

impl PruneCounts {
    /// Every row, all kinds together.
    pub fn total(&self) -> u64 {
        self.certificates + self.observations + self.endpoints + self.hosts
    }

    /// The kinds with their names, as the metric labels them.
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("certificates", self.certificates),
            ("observations", self.observations),
            ("endpoints", self.endpoints),
            ("hosts", self.hosts),
        ]
    }

    /// Whether a batch that deleted these was the last one needed: no kind filled it.
    /// (Observations deleted with certificates or endpoints may fill it without more to
    /// do: the next batch then finds nothing, and says so.)
    pub fn drained(&self, batch: usize) -> bool {
        let batch = batch.clamp(1, MAX_BATCH) as u64;
        self.by_kind().iter().all(|(_, count)| *count < batch)
    }
}

impl std::ops::AddAssign for PruneCounts {
    fn add_assign(&mut self, other: PruneCounts) {
        self.certificates += other.certificates;
        self.observations += other.observations;
        self.endpoints += other.endpoints;
        self.hosts += other.hosts;
    }
}

/// Pruning, as the scheduler runs it.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Prunes one batch: at most `policy.batch` rows of each kind, in one transaction
    /// that also adds them to the totals. Run it again while
    /// [`PruneCounts::drained`] is false.
    async fn prune_batch(&self, policy: &RetentionPolicy) -> Result<PruneCounts>;

    /// Prunes everything the policy allows, a batch at a time, and returns what went.
    async fn prune(&self, policy: &RetentionPolicy) -> Result<PruneCounts> {
        let mut pruned = PruneCounts::default();
        if !policy.prunes() {
            return Ok(pruned);
        }
        loop {
            let batch = self.prune_batch(policy).await?;
            pruned += batch;
            if batch.drained(policy.batch) {
                return Ok(pruned);
            }
        }
    }

    /// Rows pruned since the database was created, by whichever process (the metric).
    async fn pruned_totals(&self) -> Result<PruneCounts>;
}
