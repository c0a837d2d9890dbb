//! Rotations: an endpoint's leaf replaced by another, and how long the service took to
//! see it (its discovery latency): from the last probe that saw the old leaf there to the
//! first that saw the new one. Recorded in the transaction that records the probe; read
//! as a histogram for `/metrics` and the dashboard.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use crate::db::{Bind, Query};
use crate::error::Result;
use crate::plan::EndpointUpdate;
use crate::rows::ReadRow;

/// Upper bounds of the discovery latency histogram, in seconds: a minute to a week.
pub const LATENCY_BUCKETS: [u64; 11] = [
    60,
    300,
    900,
    3_600,
    3 * 3_600,
    6 * 3_600,
    12 * 3_600,
    86_400,
    2 * 86_400,
    4 * 86_400,
    7 * 86_400,
];

/// A `rotations` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RotationRow {
    pub endpoint_id: i64,
    pub old_sha256: String,
    pub new_sha256: String,
    /// The last probe that saw the old leaf.
    pub old_seen_at: OffsetDateTime,
    /// The first probe that saw the new one.
    pub new_seen_at: OffsetDateTime,
    pub latency_ms: i64,
}

/// The rotations among these endpoint updates, given the leaf each endpoint served before
/// (and when it was last seen): an update that sets a current observation whose leaf
/// differs. A failed probe (no new observation) is no rotation, nor is a first leaf.
pub(crate) fn rotations(
    before: &HashMap<i64, (String, OffsetDateTime)>,
    updates: &[EndpointUpdate],
) -> Vec<RotationRow> {
    updates
        .iter()
        .filter(|update| update.observation_id.is_some())
        .filter_map(|update| {
            let new = update.leaf_sha256.as_ref()?;
            let (old, old_seen_at) = before.get(&update.id)?;
            if old == new {
                return None;
            }
            let latency = (update.probed_at - *old_seen_at).max(Duration::ZERO);
            Some(RotationRow {
                endpoint_id: update.id,
                old_sha256: old.clone(),
                new_sha256: new.clone(),
                old_seen_at: *old_seen_at,
                new_seen_at: update.probed_at,
                latency_ms: i64::try_from(latency.whole_milliseconds()).unwrap_or(i64::MAX),
            })
        })
        .collect()
}

/// Discovery latency of the rotations seen: a histogram of all of them, and the same for
/// those of the last 7 days.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiscoveryLatency {
    /// Every rotation seen.
    pub all: LatencyHistogram,
    /// Rotations seen in the last 7 days.
    pub last_7_days: LatencyHistogram,
}

/// Counts of rotations by discovery latency.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyHistogram {
    /// Rotations counted.
    pub count: u64,
    /// Their latencies added up, in seconds.
    pub sum_seconds: f64,
    /// For each bound of [`LATENCY_BUCKETS`], the rotations seen within it (cumulative).
    pub within: Vec<(u64, u64)>,
}

impl LatencyHistogram {
    /// The smallest bucket bound within which at least `share` (0.5: half) of the
    /// rotations were seen; `None` without rotations or when the share lies past the
    /// last bound.
    pub fn bound_for(&self, share: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let needed = (self.count as f64 * share).ceil() as u64;
        self.within
            .iter()
            .find(|(_, within)| *within >= needed)
            .map(|(bound, _)| *bound)
    }
}

/// One row: `count`, `sum_ms` and `le_<bound>` for every rotation and, prefixed
/// `recent_`, for those seen since `$1`.
pub(crate) fn latency_query(now: OffsetDateTime) -> Query {
    let mut query = Query::default();
    let since = query.arg(Bind::Time(now - Duration::days(7)));
    let mut columns = vec![
        "COUNT(*) AS count".to_owned(),
        "CAST(COALESCE(SUM(latency_ms), 0) AS BIGINT) AS sum_ms".to_owned(),
        format!("CAST(COALESCE(SUM(CASE WHEN new_seen_at >= {since} THEN 1 ELSE 0 END), 0) AS BIGINT) AS recent_count"),
        format!("CAST(COALESCE(SUM(CASE WHEN new_seen_at >= {since} THEN latency_ms ELSE 0 END), 0) AS BIGINT) AS recent_sum_ms"),
    ];
    for bound in LATENCY_BUCKETS {
        let ms = bound * 1000;
        columns.push(format!(
            "CAST(COALESCE(SUM(CASE WHEN latency_ms <= {ms} THEN 1 ELSE 0 END), 0) AS BIGINT) AS le_{bound}"
        ));
        columns.push(format!(
            "CAST(COALESCE(SUM(CASE WHEN latency_ms <= {ms} AND new_seen_at >= {since} \
             THEN 1 ELSE 0 END), 0) AS BIGINT) AS recent_le_{bound}"
        ));
    }
    query.sql = format!("SELECT {} FROM rotations", columns.join(", "));
    query
}

/// The row of [`latency_query`].
pub(crate) fn latency(row: &impl ReadRow) -> Result<DiscoveryLatency> {
    let histogram = |prefix: &str| -> Result<LatencyHistogram> {
        let count = |column: &str| -> Result<u64> { row.number(&format!("{prefix}{column}")) };
        let mut within = Vec::with_capacity(LATENCY_BUCKETS.len());
        for bound in LATENCY_BUCKETS {
            within.push((bound, count(&format!("le_{bound}"))?));
        }
        Ok(LatencyHistogram {
            count: count("count")?,
            sum_seconds: count("sum_ms")? as f64 / 1000.0,
            within,
        })
    };
    Ok(DiscoveryLatency {
        all: histogram("")?,
        last_7_days: histogram("recent_")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-04 12:00 UTC);

    fn update(id: i64, leaf: Option<&str>, observed: bool) -> EndpointUpdate {
        EndpointUpdate {
            id,
            status: "ok",
            error: None,
            probed_at: NOW,
            failures: 0,
            next_probe_at: NOW + Duration::hours(1),
            observation_id: observed.then_some(id * 10),
            keep_observation: false,
            leaf_sha256: leaf.map(str::to_owned),
            leaf_not_after: None,
        }
    }

    #[test]
    fn a_new_leaf_is_a_rotation_timed_from_the_last_sight_of_the_old_one() {
        let seen = NOW - Duration::minutes(90);
        let before = HashMap::from([
            (1, ("old".to_owned(), seen)),
            (2, ("same".to_owned(), seen)),
            (3, ("old".to_owned(), seen)),
        ]);
        let updates = [
            update(1, Some("new"), true),
            update(2, Some("same"), true),
            // A failed probe keeps the old observation: no rotation.
            update(3, None, false),
            // A first leaf: nothing before it.
            update(4, Some("first"), true),
        ];
        let found = rotations(&before, &updates);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].endpoint_id, 1);
        assert_eq!(
            (found[0].old_sha256.as_str(), found[0].new_sha256.as_str()),
            ("old", "new")
        );
        assert_eq!(found[0].latency_ms, 90 * 60 * 1000);
    }

    #[test]
    fn the_bound_for_a_share_is_the_first_bucket_that_holds_it() {
        let histogram = LatencyHistogram {
            count: 10,
            sum_seconds: 0.0,
            within: vec![(60, 2), (300, 5), (900, 9), (3_600, 10)],
        };
        assert_eq!(histogram.bound_for(0.5), Some(300));
        assert_eq!(histogram.bound_for(0.9), Some(900));
        assert_eq!(LatencyHistogram::default().bound_for(0.5), None);
    }
}
