//! When an endpoint is probed next: every `interval` with jitter, sooner after a failure
//! and then backing off.

use certfleet_model::ProbeStatus;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The probing rhythm the store schedules endpoints with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSchedule {
    /// Time between two probes of a healthy endpoint (`probe.interval`).
    pub interval: Duration,
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
            jitter: 0.1,
            retry_after: Duration::minutes(10),
            unreported_after: crate::plan::REPORT_WINDOW,
        }
    }
}

impl ProbeSchedule {
    /// Failed probes in a row after one with `status`, given the count before it.
    pub fn failures_after(status: ProbeStatus, failures_before: u32) -> u32 {
        match status {
            ProbeStatus::Ok => 0,
            _ => failures_before.saturating_add(1),
        }
    }

    /// The next probe time of endpoint `id`, probed now with the resulting `failures`.
    /// An endpoint outside the allowed networks waits a whole interval: it will not get
    /// in by retrying. The jitter is derived from the endpoint and the time, so it needs
    /// no random source and spreads endpoints evenly.
    pub fn next_probe_at(
        &self,
        id: i64,
        status: ProbeStatus,
        failures: u32,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        let delay = if failures == 0 || status == ProbeStatus::Denied {
            self.interval
        } else {
            let doublings = (failures - 1).min(30);
            let backoff = self.retry_after * 2f64.powi(doublings as i32);
            backoff.min(self.interval)
        };
        let spread = delay * (self.jitter.clamp(0.0, 1.0) * unit_noise(id, now));
        now + delay + spread
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

    #[test]
    fn healthy_endpoints_wait_an_interval_within_the_jitter() {
        let schedule = ProbeSchedule::default();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        for id in 0..100 {
            let next = schedule.next_probe_at(id, ProbeStatus::Ok, 0, now);
            assert!(next >= now + Duration::hours(21) && next <= now + Duration::hours(27));
        }
    }

    #[test]
    fn failures_back_off_up_to_the_interval() {
        let schedule = ProbeSchedule {
            jitter: 0.0,
            ..ProbeSchedule::default()
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let after = |failures| schedule.next_probe_at(1, ProbeStatus::Timeout, failures, now) - now;
        assert_eq!(after(1), Duration::minutes(10));
        assert_eq!(after(2), Duration::minutes(20));
        assert_eq!(after(40), Duration::hours(24));
        assert_eq!(ProbeSchedule::failures_after(ProbeStatus::Refused, 2), 3);
        assert_eq!(ProbeSchedule::failures_after(ProbeStatus::Ok, 2), 0);
    }
}
