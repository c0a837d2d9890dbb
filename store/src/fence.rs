//! Which probe results may still be written: a result recorded under a lease is written
//! only while that lease is still the endpoint's lease, so that a prober that wakes up
//! after its lease ran out (a VM pause, SIGSTOP, a long database outage) cannot overwrite
//! what another prober recorded since. Both backends lock the batch's endpoint rows, read
//! their lease, and ask [`Fence::admit`] which results to write.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use certfleet_model::ProbeResult;
use time::OffsetDateTime;

use crate::error::Result;
use crate::records::{EndpointId, Lease};
use crate::rows::ReadRow;

/// The leases a batch of results was probed under, all of one worker.
pub(crate) struct Fence<'a> {
    worker: &'a str,
    leases: HashMap<i64, OffsetDateTime>,
}

/// An endpoint row as the recording transaction found it (locked).
pub(crate) struct CurrentLease {
    pub id: i64,
    pub failures: u32,
    pub owner: Option<String>,
    pub until: Option<OffsetDateTime>,
    /// The leaf it served until this probe, and when a probe last saw it there.
    pub leaf: Option<(String, OffsetDateTime)>,
    /// Its current observation's findings and client-certificate policy (for events).
    pub previous: Option<Previous>,
}

/// What an endpoint's current observation said before this probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Previous {
    pub findings: Vec<String>,
    pub mtls: MtlsColumns,
}

/// An observation's client-certificate policy, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MtlsColumns {
    pub requested: bool,
    pub required: Option<bool>,
    pub enforced: Option<String>,
}

/// The columns [`current_lease`] reads, for `FROM endpoints e LEFT JOIN observations o
/// ON o.id = e.observation_id`.
pub(crate) const CURRENT_LEASE_COLUMNS: &str =
    "e.id, e.failures, e.lease_owner, e.lease_until, e.leaf_sha256, o.last_seen AS leaf_seen_at, \
     o.id AS o_id, o.findings AS o_findings, o.mtls_requested AS o_mtls_requested, \
     o.mtls_required AS o_mtls_required, o.mtls_enforced AS o_mtls_enforced";

/// A row of [`CURRENT_LEASE_COLUMNS`].
pub(crate) fn current_lease(row: &impl ReadRow) -> Result<CurrentLease> {
    let leaf = match (row.opt_text("leaf_sha256")?, row.opt_time("leaf_seen_at")?) {
        (Some(sha256), Some(seen_at)) => Some((sha256, seen_at)),
        _ => None,
    };
    let previous = match row.opt_int("o_id")? {
        Some(_) => Some(Previous {
            findings: row.json("o_findings")?,
            mtls: MtlsColumns {
                requested: row.boolean("o_mtls_requested")?,
                required: row.opt_bool("o_mtls_required")?,
                enforced: row.opt_text("o_mtls_enforced")?,
            },
        }),
        None => None,
    };
    Ok(CurrentLease {
        previous,
        id: row.int("id")?,
        failures: row.number("failures")?,
        owner: row.opt_text("lease_owner")?,
        until: row.opt_time("lease_until")?,
        leaf,
    })
}

/// What may be written: the failures before this probe of each endpoint to update (and
/// the leaf it served until now), and the endpoints whose results are stale.
pub(crate) struct Admitted {
    pub failures: HashMap<i64, u32>,
    pub leaves: HashMap<i64, (String, OffsetDateTime)>,
    pub previous: HashMap<i64, Previous>,
    pub stale: Vec<EndpointId>,
}

impl<'a> Fence<'a> {
    /// The fence of `worker`'s results, and the results by endpoint.
    pub fn new(
        worker: &'a str,
        results: &[(Lease, ProbeResult)],
    ) -> (Fence<'a>, Vec<(EndpointId, ProbeResult)>) {
        let leases = results
            .iter()
            .map(|(lease, _)| (lease.endpoint.0, lease.until))
            .collect();
        let by_endpoint = results
            .iter()
            .map(|(lease, result)| (lease.endpoint, result.clone()))
            .collect();
        (Fence { worker, leases }, by_endpoint)
    }

    /// The endpoint's lease is still the one its result was probed under: same owner and
    /// same deadline. The deadline may have passed: as long as nobody leased the endpoint
    /// since, this result is the newest there is. A lease ended by a record, a release or
    /// a retirement, or taken over by a later lease (another worker's, or this worker's
    /// own next lease), is not.
    fn holds(&self, row: &CurrentLease) -> bool {
        self.leases.get(&row.id).is_some_and(|until| {
            row.owner.as_deref() == Some(self.worker) && row.until == Some(*until)
        })
    }

    /// Splits the locked rows. Without a fence every known endpoint is written (and
    /// unknown ids are ignored); with one, only those whose lease holds, the others
    /// (unknown ids too) are stale.
    pub fn admit(
        fence: Option<&Fence<'_>>,
        requested: &[i64],
        rows: Vec<CurrentLease>,
    ) -> Admitted {
        let mut failures = HashMap::with_capacity(rows.len());
        let mut leaves = HashMap::new();
        let mut previous = HashMap::new();
        let mut stale = Vec::new();
        for row in rows {
            match fence {
                Some(fence) if !fence.holds(&row) => stale.push(EndpointId(row.id)),
                _ => {
                    failures.insert(row.id, row.failures);
                    if let Some(leaf) = row.leaf {
                        leaves.insert(row.id, leaf);
                    }
                    if let Some(before) = row.previous {
                        previous.insert(row.id, before);
                    }
                }
            }
        }
        if fence.is_some() {
            let found: HashSet<i64> = failures
                .keys()
                .copied()
                .chain(stale.iter().map(|id| id.0))
                .collect();
            let mut unknown: Vec<i64> = requested
                .iter()
                .copied()
                .filter(|id| !found.contains(id))
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            stale.extend(unknown.into_iter().map(EndpointId));
        }
        Admitted {
            failures,
            leaves,
            previous,
            stale,
        }
    }
}

/// The results of the endpoints that may be written (all of them when none is stale).
pub(crate) fn admitted_results<'r>(
    results: &'r [(EndpointId, ProbeResult)],
    admitted: &Admitted,
) -> Cow<'r, [(EndpointId, ProbeResult)]> {
    if admitted.stale.is_empty() {
        return Cow::Borrowed(results);
    }
    Cow::Owned(
        results
            .iter()
            .filter(|(id, _)| admitted.failures.contains_key(&id.0))
            .cloned()
            .collect(),
    )
}
