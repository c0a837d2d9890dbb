//! When a certificate is due: the thresholds it has crossed, renewal that looks late for
//! short-lived certificates, and expiry.

use std::fmt;

use time::{Duration, OffsetDateTime};

/// How urgent one notification is; also its key in the outbox (`threshold` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Expired and still served.
    Expired,
    /// A short-lived certificate with under a third of its lifetime left: its automated
    /// renewal looks late.
    Late,
    /// At most this many days left: the tightest threshold crossed.
    Days(u32),
    /// No longer served by the owner's endpoints (renewed, moved or removed) after the
    /// owner was told it was expiring.
    Resolved,
}

impl Level {
    /// The outbox key: `expired`, `late`, `7d`, `resolved`.
    pub fn key(&self) -> String {
        match self {
            Level::Expired => "expired".into(),
            Level::Late => "late".into(),
            Level::Days(days) => format!("{days}d"),
            Level::Resolved => "resolved".into(),
        }
    }

    /// Reads an outbox key back; `None` for a key this version does not know.
    pub fn from_key(key: &str) -> Option<Level> {
        match key {
            "expired" => Some(Level::Expired),
            "late" => Some(Level::Late),
            "resolved" => Some(Level::Resolved),
            days => days.strip_suffix('d')?.parse().ok().map(Level::Days),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// What is due for a certificate now, or `None`.
///
/// - Expired (`not_after <= now`): [`Level::Expired`].
/// - Short-lived (lifetime at most `short_lived_days`; 0 turns this off): only
///   [`Level::Late`], once under a third of the lifetime is left. Its lifetime fits inside
///   the thresholds, so thresholds would fire at every renewal.
/// - Otherwise the tightest threshold crossed: `days left <= threshold`. Crossing, not
///   an exact day, so a missed run or a certificate first seen at 5 days left still fires
///   (at 7, the tightest crossed, rather than at 30, 14 and 7 together).
pub fn level(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    thresholds: &[u32],
    short_lived_days: u32,
) -> Option<Level> {
    let left = not_after - now;
    if left <= Duration::ZERO {
        return Some(Level::Expired);
    }
    let lifetime = not_after - not_before;
    if short_lived_days > 0 && lifetime <= Duration::days(i64::from(short_lived_days)) {
        return (left * 3 < lifetime).then_some(Level::Late);
    }
    thresholds
        .iter()
        .copied()
        .filter(|days| left <= Duration::days(i64::from(*days)))
        .min()
        .map(Level::Days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);
    const DEFAULT: [u32; 5] = [30, 14, 7, 3, 1];

    fn year_long_cert_with(left: Duration) -> Option<Level> {
        let not_after = NOW + left;
        level(
            not_after - Duration::days(365),
            not_after,
            NOW,
            &DEFAULT,
            30,
        )
    }

    #[test]
    fn nothing_is_due_before_the_first_threshold() {
        assert_eq!(year_long_cert_with(Duration::days(31)), None);
    }

    #[test]
    fn the_tightest_crossed_threshold_fires() {
        assert_eq!(
            year_long_cert_with(Duration::days(30)),
            Some(Level::Days(30))
        );
        assert_eq!(
            year_long_cert_with(Duration::days(20)),
            Some(Level::Days(30))
        );
        assert_eq!(year_long_cert_with(Duration::days(5)), Some(Level::Days(7)));
        assert_eq!(
            year_long_cert_with(Duration::hours(2)),
            Some(Level::Days(1))
        );
    }

    #[test]
    fn expired_certificates_are_expired() {
        assert_eq!(year_long_cert_with(Duration::ZERO), Some(Level::Expired));
        assert_eq!(
            year_long_cert_with(Duration::days(-40)),
            Some(Level::Expired)
        );
    }

    #[test]
    fn short_lived_certificates_alert_only_when_renewal_is_late() {
        let not_before = NOW - Duration::days(2);
        let short = |left: Duration| level(not_before, NOW + left, NOW, &DEFAULT, 30);
        // 7-day certificate, 5 days left: renewal not due yet, although 5 <= 7.
        assert_eq!(short(Duration::days(5)), None);
        // 50 hours left of 98: more than a third, still fine.
        assert_eq!(short(Duration::hours(50)), None);
        // 1 day left of 3 days: exactly a third is not under a third.
        assert_eq!(short(Duration::days(1)), None);
        assert_eq!(short(Duration::hours(20)), Some(Level::Late));
        assert_eq!(short(Duration::ZERO), Some(Level::Expired));
    }

    #[test]
    fn zero_short_lived_days_turns_the_rule_off() {
        let not_before = NOW - Duration::days(2);
        let due = level(not_before, NOW + Duration::days(5), NOW, &DEFAULT, 0);
        assert_eq!(due, Some(Level::Days(7)));
    }

    #[test]
    fn keys_read_back() {
        for level in [
            Level::Expired,
            Level::Late,
            Level::Days(14),
            Level::Resolved,
        ] {
            assert_eq!(Level::from_key(&level.key()), Some(level));
        }
        assert_eq!(Level::from_key("soon"), None);
    }
}
