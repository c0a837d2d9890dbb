//! How far behind a streaming replica is, measured on the watcher's own clock: each check
//! first reads the primary's WAL position (`pg_current_wal_lsn`), then the replica's
//! replayed position. Once the replica has replayed past a position the primary showed at
//! time `t`, it holds every transaction committed before `t`, so its lag is at most
//! `now - t`. Measured this way the lag needs no clock shared with the database servers,
//! does not grow while the primary is idle (the usual `now() - pg_last_xact_replay_timestamp()`
//! does, and would send reads to the primary for nothing), and does grow while replay is
//! paused or the replica is cut off from the primary. Its resolution is the check interval.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Primary positions remembered while the replica has not reached them: at one check a
/// second, over an hour. Beyond, the oldest is forgotten, which can only overstate the lag.
const MAX_SAMPLES: usize = 4_096;

/// The replica's freshness, from the positions of the primary and of the replica.
#[derive(Debug, Default)]
pub(crate) struct LagTracker {
    /// (when, primary WAL position then), oldest first, not yet replayed by the replica.
    samples: VecDeque<(Instant, i64)>,
    /// The latest time the replica is known to hold everything committed before.
    fresh_at: Option<Instant>,
}

impl LagTracker {
    /// The primary's WAL position, read at `at`.
    pub fn primary_at(&mut self, at: Instant, position: i64) {
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, position));
    }

    /// The replica has replayed WAL up to `position` (read after every earlier
    /// [`primary_at`](Self::primary_at)).
    pub fn replayed(&mut self, position: i64) {
        while let Some(&(at, primary)) = self.samples.front() {
            if primary > position {
                break;
            }
            self.fresh_at = Some(self.fresh_at.map_or(at, |fresh| fresh.max(at)));
            self.samples.pop_front();
        }
    }

    /// How far behind the replica is at `now`; `None` until it has caught up with a
    /// position once.
    pub fn lag(&self, now: Instant) -> Option<Duration> {
        self.fresh_at
            .map(|fresh| now.saturating_duration_since(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_unknown_until_the_replica_reaches_a_primary_position() {
        let start = Instant::now();
        let mut lag = LagTracker::default();
        assert_eq!(lag.lag(start), None);
        lag.primary_at(start, 100);
        lag.replayed(99);
        assert_eq!(lag.lag(start + Duration::from_secs(5)), None);
        lag.replayed(100);
        assert_eq!(
            lag.lag(start + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn an_idle_primary_keeps_a_caught_up_replica_fresh() {
        let start = Instant::now();
        let mut lag = LagTracker::default();
        for second in 0..60 {
            let at = start + Duration::from_secs(second);
            lag.primary_at(at, 500);
            lag.replayed(500);
        }
        let now = start + Duration::from_secs(59);
        assert_eq!(lag.lag(now), Some(Duration::ZERO));
    }

    #[test]
    fn paused_replay_makes_the_lag_grow_from_the_last_position_reached() {
        let start = Instant::now();
        let mut lag = LagTracker::default();
        lag.primary_at(start, 100);
        lag.replayed(100);
        // The primary writes on; the replica stays at 150.
        for second in 1..=10 {
            lag.primary_at(
                start + Duration::from_secs(second),
                100 + 100 * second as i64,
            );
            lag.replayed(150);
        }
        let now = start + Duration::from_secs(10);
        assert_eq!(lag.lag(now), Some(Duration::from_secs(10)));
        // Replay resumes up to the position of second 7.
        lag.replayed(800);
        assert_eq!(lag.lag(now), Some(Duration::from_secs(3)));
        lag.replayed(1_100);
        assert_eq!(lag.lag(now), Some(Duration::ZERO));
    }

    #[test]
    fn a_replica_behind_for_long_only_ever_overstates_its_lag() {
        let start = Instant::now();
        let mut lag = LagTracker::default();
        lag.primary_at(start, 0);
        lag.replayed(0);
        let checks = MAX_SAMPLES as u64 + 10;
        for n in 1..=checks {
            lag.primary_at(start + Duration::from_secs(n), n as i64);
        }
        assert_eq!(lag.samples.len(), MAX_SAMPLES);
        // The replica reaches position 5, which was forgotten: the lag stays as it was.
        lag.replayed(5);
        let now = start + Duration::from_secs(checks);
        assert_eq!(lag.lag(now), Some(Duration::from_secs(checks)));
        lag.replayed(checks as i64);
        assert_eq!(lag.lag(now), Some(Duration::ZERO));
    }
}
