//! When an endpoint is probed next: sooner the closer its certificate is to its end or to
//! a notification threshold (docs/probing.md, "When endpoints are probed"), with jitter;
//! sooner after a failure and then backing off.

use crate::ProbeStatus;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// How long after a threshold crossing the endpoint is probed: the crossing has passed by
/// then whatever the clocks' skew between probers and the database.
const AFTER_CROSSING: Duration = Duration::minutes(1);

/// How long a socket stays its host's after the host last reported it: two agent report
/// intervals. Within it, another host's claim is a conflict (`StoreOptions::claim_window`);
/// past it, a socket whose probes fail twice in a row no longer serves its certificate, and
/// an endpoint no longer reported is retired.
pub const REPORT_WINDOW: Duration = Duration::hours(2);

/// The probing rhythm the store schedules endpoints with.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSchedule {
    /// Longest time between two probes of a healthy endpoint (`probe.interval`).
    pub interval: Duration,
    /// Shortest time between two probes of a healthy endpoint (`probe.min_interval`):
    /// however close to its end a certificate is, its endpoint is probed at most this
    /// often (except right after a threshold crossing).
    pub min_interval: Duration,
    /// Probe a healthy endpoint again after this fraction of its leaf's remaining
    /// lifetime (`probe.lifetime_fraction`, 0.1: a tenth), between `min_interval` and
    /// `interval`; 0: every `interval`, whatever the certificate.
    pub lifetime_fraction: f64,
    /// Days before expiry at which owners are told (`notify.thresholds` and the owner
    /// rules' own): an endpoint is probed right after its leaf crosses each one, so that
    /// a notification about it rests on a probe after the crossing.
    pub thresholds: Vec<u32>,
    /// `notify.short_lived_days`: a leaf with at most this lifetime is reported late at a
    /// third of its lifetime left, so that point is a crossing too (0: no such rule).
    pub short_lived_days: u32,
    /// Jitter as a fraction of the delay (0.1: plus or minus 10 %), so that endpoints
    /// first seen together spread out.
    pub jitter: f64,
    /// Delay after a first failure; it doubles with each further failure, up to
    /// `interval`.
    pub retry_after: Duration,
    /// A socket its host has not reported for this long whose probes fail twice in a row
    /// no longer serves its certificate (`retention.report_window`, two report intervals).
    pub unreported_after: Duration,
}

impl Default for ProbeSchedule {
    fn default() -> Self {
        ProbeSchedule {
            interval: Duration::hours(24),
            min_interval: Duration::hours(1),
            lifetime_fraction: 0.1,
            thresholds: vec![30, 14, 7, 3, 1],
            short_lived_days: 30,
            jitter: 0.1,
            retry_after: Duration::minutes(10),
            unreported_after: REPORT_WINDOW,
        }
    }
}

/// The validity of the leaf an endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl ProbeSchedule {
    /// Failed probes in a row after one with `status`, given the count before it.
    pub fn failures_after(status: ProbeStatus, failures_before: u32) -> u32 {
        match status {
            ProbeStatus::Ok => 0,
            _ => failures_before.saturating_add(1),
        }
    }

    /// The next probe time of endpoint `id`, probed now with the resulting `failures`,
    /// serving a leaf of this validity (if the probe captured one). An endpoint outside
    /// the allowed networks waits a whole interval: it will not get in by retrying. The
    /// jitter is derived from the endpoint and the time, so it needs no random source and
    /// spreads endpoints evenly.
    pub fn next_probe_at(
        &self,
        id: i64,
        status: ProbeStatus,
        failures: u32,
        now: OffsetDateTime,
        leaf: Option<Validity>,
    ) -> OffsetDateTime {
        let noise = unit_noise(id, now);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if failures > 0 && status != ProbeStatus::Denied {
            let doublings = (failures - 1).min(30);
            let backoff = (self.retry_after * 2f64.powi(doublings as i32)).min(self.interval);
            return now + backoff + backoff * (jitter * noise);
        }
        let Some(leaf) = leaf.filter(|_| status == ProbeStatus::Ok) else {
            return now + self.interval + self.interval * (jitter * noise);
        };
        let delay = self.healthy_delay(leaf, now);
        // Jittered, but never past the next crossing: that probe is what a notification
        // about the crossing waits for.
        let jittered = delay + delay * (jitter * noise);
        match self.next_crossing(leaf, now) {
            Some(crossing) if crossing + AFTER_CROSSING <= now + jittered => {
                crossing + AFTER_CROSSING + AFTER_CROSSING * (jitter * noise.abs())
            }
            _ => now + jittered,
        }
    }

    /// The delay before the next probe of a healthy endpoint serving `leaf`, before
    /// jitter and crossings: `lifetime_fraction` of the time the leaf has left, between
    /// `min_interval` and `interval`. An expired leaf has no crossing left and has been
    /// mailed about already (and the notifier probes again before mailing once more), so
    /// it goes back to `interval`: probed hourly, the 7 % of a fleet like the seed's that
    /// serve an expired leaf cost more probes than every short-lived certificate.
    pub fn healthy_delay(&self, leaf: Validity, now: OffsetDateTime) -> Duration {
        let floor = self.min_interval.min(self.interval);
        if self.lifetime_fraction <= 0.0 || leaf.not_after <= now {
            return self.interval;
        }
        let left = leaf.not_after - now;
        (left * self.lifetime_fraction.min(1.0)).clamp(floor, self.interval)
    }

    /// The first point after `now` at which a notification about this leaf changes: a
    /// threshold (days before its end), its late point when short-lived, its end.
    pub fn next_crossing(&self, leaf: Validity, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let lifetime = leaf.not_after - leaf.not_before;
        let short_lived = self.short_lived_days > 0
            && lifetime <= Duration::days(i64::from(self.short_lived_days));
        let mut points = vec![leaf.not_after];
        if short_lived {
            points.push(leaf.not_after - lifetime / 3);
        } else {
            points.extend(
                self.thresholds
                    .iter()
                    .map(|days| leaf.not_after - Duration::days(i64::from(*days))),
            );
        }
        points.into_iter().filter(|point| *point > now).min()
    }
}

/// A number in [-1, 1) derived from an endpoint id and a time.
fn unit_noise(id: i64, now: OffsetDateTime) -> f64 {
    let digest = Sha256::new()
        .chain_update(id.to_le_bytes())
        .chain_update(now.unix_timestamp_nanos().to_le_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-04 12:00 UTC);

    fn exact() -> ProbeSchedule {
        ProbeSchedule {
            jitter: 0.0,
            ..ProbeSchedule::default()
        }
    }

    /// A leaf of `lifetime` with `left` to run at NOW.
    fn leaf(lifetime: Duration, left: Duration) -> Option<Validity> {
        Some(Validity {
            not_before: NOW + left - lifetime,
            not_after: NOW + left,
        })
    }

    fn healthy(schedule: &ProbeSchedule, leaf: Option<Validity>) -> Duration {
        schedule.next_probe_at(7, ProbeStatus::Ok, 0, NOW, leaf) - NOW
    }

    #[test]
    fn healthy_endpoints_without_a_leaf_wait_an_interval_within_the_jitter() {
        let schedule = ProbeSchedule::default();
        for id in 0..100 {
            let next = schedule.next_probe_at(id, ProbeStatus::Ok, 0, NOW, None);
            assert!(next >= NOW + Duration::hours(21) && next <= NOW + Duration::hours(27));
        }
    }

    #[test]
    fn a_tenth_of_the_remaining_lifetime_between_an_hour_and_the_interval() {
        let schedule = exact();
        let year = Duration::days(365);
        // 200 days left, no threshold near: the interval (a tenth would be 20 days).
        assert_eq!(
            healthy(&schedule, leaf(year, Duration::days(200))),
            Duration::hours(24)
        );
        // 5 days of a 6-day certificate left: half a day.
        assert_eq!(
            healthy(&schedule, leaf(Duration::days(6), Duration::days(5))),
            Duration::hours(12)
        );
        // 5 hours left of a 2-day certificate: the hourly floor (a tenth is 30 minutes).
        // Its late point (16 h left) is behind it, its end 5 h away.
        assert_eq!(
            healthy(&schedule, leaf(Duration::days(2), Duration::hours(5))),
            Duration::hours(1)
        );
        // Expired and still served: back to the interval (no crossing left).
        assert_eq!(
            healthy(&schedule, leaf(year, Duration::hours(-3))),
            Duration::hours(24)
        );
        // A minute before its end: the hourly floor, then the end's crossing.
        assert_eq!(
            healthy(&schedule, leaf(year, Duration::minutes(1))),
            Duration::minutes(2)
        );
    }

    #[test]
    fn the_probe_after_a_threshold_crossing_comes_right_after_it() {
        let schedule = exact();
        let year = Duration::days(365);
        // 7 days and 3 hours left: the 7-day threshold is crossed in 3 hours, before the
        // 17-hour delay a tenth of the lifetime left would give.
        let next = healthy(
            &schedule,
            leaf(year, Duration::days(7) + Duration::hours(3)),
        );
        assert_eq!(next, Duration::hours(3) + Duration::minutes(1));
        // A 6-day certificate is short-lived: its late point (2 days left) is its only
        // threshold; 2 days and 2 hours left, it is probed a minute after the late point.
        let next = healthy(
            &schedule,
            leaf(Duration::days(6), Duration::days(2) + Duration::hours(2)),
        );
        assert_eq!(next, Duration::hours(2) + Duration::minutes(1));
        // With jitter, the crossing still comes first, within a minute after it.
        let jittered = ProbeSchedule::default();
        for id in 0..50 {
            let leaf = leaf(year, Duration::days(7) + Duration::hours(3));
            let next = jittered.next_probe_at(id, ProbeStatus::Ok, 0, NOW, leaf) - NOW;
            assert!(next >= Duration::hours(3) + Duration::minutes(1));
            assert!(next <= Duration::hours(3) + Duration::minutes(2));
        }
    }

    #[test]
    fn a_fixed_interval_when_adaptive_probing_is_off() {
        let schedule = ProbeSchedule {
            lifetime_fraction: 0.0,
            ..exact()
        };
        let next = healthy(&schedule, leaf(Duration::days(6), Duration::days(5)));
        assert_eq!(next, Duration::hours(24));
    }

    #[test]
    fn failures_back_off_up_to_the_interval() {
        let schedule = exact();
        let after = |failures| {
            let leaf = leaf(Duration::days(6), Duration::days(5));
            schedule.next_probe_at(1, ProbeStatus::Timeout, failures, NOW, leaf) - NOW
        };
        assert_eq!(after(1), Duration::minutes(10));
        assert_eq!(after(2), Duration::minutes(20));
        assert_eq!(after(40), Duration::hours(24));
        assert_eq!(ProbeSchedule::failures_after(ProbeStatus::Refused, 2), 3);
        assert_eq!(ProbeSchedule::failures_after(ProbeStatus::Ok, 2), 0);
    }
}
