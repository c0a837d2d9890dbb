//! The invariants of a simulated fleet day, each counted as passed or failed with what
//! was expected and what was found.

use certfleet_notifier::RunReport;
use certfleet_store::PostgresStore;
use time::OffsetDateTime;

use crate::fleet::{self, Fleet};
use crate::Error;

/// Storage counts as flat when no day after the second is more than this much larger
/// than the second (autovacuum's reuse is not exact).
const FLAT: f64 = 1.10;

#[derive(Debug, Default)]
pub struct Checks {
    pub passed: u32,
    pub failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(what);
        }
    }

    /// Every socket of the second pass is one active endpoint, seen at that pass, and
    /// the reports stood for exactly that many.
    pub async fn sockets_stored_once(
        &mut self,
        store: &PostgresStore,
        fleet: Fleet,
        pass: OffsetDateTime,
        reported: u64,
    ) -> Result<(), Error> {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM endpoints \
             WHERE retired_at IS NULL AND sni = '' AND last_seen >= $1",
        )
        .bind(pass)
        .fetch_one(store.pool())
        .await?;
        let sockets = fleet.sockets();
        self.check(
            stored as u64 == sockets && reported == sockets,
            format!(
                "every reported socket stored once: {sockets} sockets reported, the reports \
                 stood for {reported} endpoints, {stored} stored"
            ),
        );
        Ok(())
    }

    /// Each of the day's certificates was recorded once, and every socket of the second
    /// pass serves one of them.
    pub async fn certificates_recorded(
        &mut self,
        store: &PostgresStore,
        fleet: Fleet,
        day: u32,
        pass: OffsetDateTime,
    ) -> Result<(), Error> {
        let prefix = format!("{}%", &fleet::sha256(0, day)[..8]);
        let certificates: i64 =
            sqlx::query_scalar("SELECT count(*) FROM certificates WHERE sha256 LIKE $1")
                .bind(&prefix)
                .fetch_one(store.pool())
                .await?;
        let expected = i64::from(fleet.certificates_per_day);
        self.check(
            certificates == expected,
            format!("day {day}: {expected} new certificates expected, {certificates} recorded"),
        );
        let serving: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM endpoints \
             WHERE retired_at IS NULL AND sni = '' AND last_seen >= $1 AND leaf_sha256 LIKE $2",
        )
        .bind(pass)
        .bind(&prefix)
        .fetch_one(store.pool())
        .await?;
        self.check(
            serving as u64 == fleet.sockets(),
            format!(
                "day {day}: every socket serves today's certificate: {} sockets, {serving} do",
                fleet.sockets()
            ),
        );
        Ok(())
    }

    /// The first run sent what it claimed, without failures; a second run right after it
    /// claims and sends nothing.
    pub fn notified_once(&mut self, day: u32, first: &RunReport, again: &RunReport) {
        self.check(
            first.claimed > 0 && first.failures.is_empty() && first.digests_sent > 0,
            format!(
                "day {day}: notifications claimed and sent: {} claimed, {} digests, {} failed",
                first.claimed,
                first.digests_sent,
                first.failures.len()
            ),
        );
        self.check(
            again.claimed == 0 && again.digests_sent == 0,
            format!(
                "day {day}: due notifications decided exactly once: a second run claimed {} \
                 and sent {} digests",
                again.claimed, again.digests_sent
            ),
        );
    }

    pub fn found(&mut self, day: u32, kind: &str, lookups: usize, missed: usize) {
        self.check(
            lookups > 0 && missed == 0,
            format!("day {day}: every certificate found by {kind}: {missed} of {lookups} not"),
        );
    }

    /// From the third day on, the database is no larger than on the second (within
    /// [`FLAT`]), allowing for one more day of rotations: the first day has none (nothing
    /// had rotated yet), so on day 2 the `rotations` table holds one day where every later
    /// day holds one and the reused space of the one pruned. Every other table already
    /// holds its steady state on day 2. (`rotations` are the MiB of that table each day.)
    pub fn storage_flat(&mut self, sizes: &[f64], rotations: &[f64]) {
        let (Some(&second), Some(&rotations)) = (sizes.get(1), rotations.get(1)) else {
            return;
        };
        let allowed = (second + rotations) * FLAT;
        println!(
            "storage flat from day 2: every later day at most {allowed:.0} MiB (day 2 \
             {second:.0} MiB, its rotations {rotations:.1} MiB, {:.0} % for vacuum's reuse)",
            (FLAT - 1.0) * 100.0
        );
        for (day, size) in sizes.iter().enumerate().skip(2) {
            self.check(
                *size <= allowed,
                format!(
                    "storage flat from day 2: day {} {size:.0} MiB, at most {allowed:.0} MiB \
                     allowed (day 2 {second:.0} MiB plus its {rotations:.0} MiB of rotations, \
                     plus {:.0} %)",
                    day + 1,
                    (FLAT - 1.0) * 100.0
                ),
            );
        }
    }
}
