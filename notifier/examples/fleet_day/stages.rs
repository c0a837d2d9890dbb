//! One simulated day, stage by stage, each timed and checked.

use std::sync::Arc;
use std::time::Instant;

use certfleet_notifier::{Delivery, Notifier, OwnerRules, Settings};
use certfleet_store::{
    AgentName, CertificateLookup, CertificateSearch, IngestStore, Lease, ManualClock,
    PostgresStore, ProbeQueue, ReadModel, RetentionPolicy, RetentionStore, Store, MAX_PRUNE_BATCH,
};
use futures::{StreamExt, TryStreamExt};
use time::{Duration, OffsetDateTime};

use crate::checks::Checks;
use crate::fleet::{self, Fleet};
use crate::{Args, Error};

/// Reports and lookups in flight at once (the API's replicas and agents, simulated).
const CONCURRENCY: usize = 16;
/// Probe workers leasing and recording at once, and their lease size.
const PROBERS: usize = 4;
const LEASE: u32 = 500;
const LOOKUPS: u32 = 1_000;

pub struct Day<'a> {
    pub fleet: Fleet,
    pub day: u32,
    pub store: Arc<PostgresStore>,
    pub clock: ManualClock,
    pub args: &'a Args,
}

impl Day<'_> {
    pub async fn run(&self, checks: &mut Checks) -> Result<(), Error> {
        let midnight = self.clock.now();
        self.report(0, midnight + Duration::hours(1)).await?;
        self.vacuum("report").await?;
        self.record("record (due endpoints)", midnight + Duration::hours(2))
            .await?;
        self.vacuum("record").await?;
        let second = midnight + Duration::hours(12);
        let reported = self.report(1, second).await?;
        self.vacuum("report").await?;
        self.record("record (moved sockets)", second + Duration::hours(1))
            .await?;
        checks
            .sockets_stored_once(&self.store, self.fleet, second, reported)
            .await?;
        checks
            .certificates_recorded(&self.store, self.fleet, self.day, second)
            .await?;
        self.notify(checks, midnight + Duration::hours(14)).await?;
        self.lookups(checks).await?;
        self.retention(midnight + Duration::hours(15)).await?;
        Ok(())
    }

    /// Every host reports; returns the endpoints the reports stand for.
    async fn report(&self, pass: u32, at: OffsetDateTime) -> Result<u64, Error> {
        self.clock.set(at);
        let agent = AgentName::new("fleet-day")?;
        let started = Instant::now();
        let endpoints: u64 = futures::stream::iter(0..self.fleet.hosts)
            .map(|host| {
                let report = self.fleet.report(host, self.day, pass, at);
                let (store, agent) = (&self.store, &agent);
                async move { store.ingest_report(agent, &report).await }
            })
            .buffer_unordered(CONCURRENCY)
            .map_ok(|counts| counts.endpoints)
            .try_fold(0, |sum, endpoints| async move { Ok(sum + endpoints) })
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "report (pass {}): {:.1} s, {} reports, {:.0} sockets/s",
            pass + 1,
            seconds,
            self.fleet.hosts,
            self.fleet.sockets() as f64 / seconds
        );
        Ok(endpoints)
    }

    /// Probers lease every due endpoint and record what it serves today.
    async fn record(&self, stage: &str, at: OffsetDateTime) -> Result<(), Error> {
        self.clock.set(at);
        let started = Instant::now();
        let recorded: u64 = futures::stream::iter(0..PROBERS)
            .map(|worker| self.prober(format!("fleet-day/{worker}")))
            .buffer_unordered(PROBERS)
            .try_fold(0, |sum, recorded| async move { Ok(sum + recorded) })
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{stage}: {seconds:.1} s, {recorded} probe results, {:.0} results/s",
            recorded as f64 / seconds
        );
        Ok(())
    }

    async fn prober(&self, worker: String) -> Result<u64, Error> {
        let mut recorded = 0;
        loop {
            let leased = self
                .store
                .lease_due_endpoints(&worker, LEASE, Duration::minutes(10))
                .await?;
            if leased.is_empty() {
                return Ok(recorded);
            }
            let now = self.clock.now();
            let results: Vec<_> = leased
                .iter()
                .map(|endpoint| {
                    let lease = Lease {
                        endpoint: endpoint.id,
                        until: endpoint.lease_until,
                    };
                    let result =
                        self.fleet
                            .probe_result(endpoint.address, endpoint.port, self.day, now);
                    (lease, result)
                })
                .collect();
            let outcome = self
                .store
                .record_leased_probe_results(&worker, &results, &[])
                .await?;
            recorded += outcome.recorded;
        }
    }

    /// Decides and sends the day's notifications, then runs again: nothing new may be
    /// claimed the second time.
    async fn notify(&self, checks: &mut Checks, at: OffsetDateTime) -> Result<(), Error> {
        self.clock.set(at);
        let outbox = self.args.outbox.join(format!("day-{}", self.day));
        std::fs::create_dir_all(&outbox)?;
        let settings = Settings {
            delivery: Delivery::Files(outbox.clone()),
            concurrency: CONCURRENCY,
            ..Settings::new(OwnerRules::new(Vec::new(), "security@example.com")?)
        };
        let store: Arc<dyn Store> = self.store.clone();
        let notifier = Notifier::new(store, settings, Arc::new(self.clock.clone()))?;
        let started = Instant::now();
        let (decision, candidates) = notifier.decide().await?;
        println!(
            "notify decision: {:.2} s, {candidates} candidates, {} (certificate, owner) pairs due",
            started.elapsed().as_secs_f64(),
            decision.claims().len()
        );
        let started = Instant::now();
        let first = notifier.run_once().await?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "notify run: {seconds:.1} s, {} claimed, {} resolved, {} digests ({:.0} digests/s), \
             {} failed",
            first.claimed,
            first.resolved,
            first.digests_sent,
            first.digests_sent as f64 / seconds,
            first.failures.len()
        );
        let again = notifier.run_once().await?;
        checks.notified_once(self.day, &first, &again);
        std::fs::remove_dir_all(&outbox)?;
        Ok(())
    }

    /// The overview, then 1,000 hostname and 1,000 serial lookups of today's certificates,
    /// 16 at a time: each must find its certificate.
    async fn lookups(&self, checks: &mut Checks) -> Result<(), Error> {
        let started = Instant::now();
        self.store.fleet_overview().await?;
        println!("overview: {:.3} s", started.elapsed().as_secs_f64());
        let count = self.fleet.certificates_per_day;
        let sample: Vec<u32> = (0..LOOKUPS.min(count))
            .map(|k| ((u64::from(k) * 7_919) % u64::from(count)) as u32)
            .collect();
        for by_serial in [false, true] {
            let started = Instant::now();
            let mut outcomes: Vec<(f64, bool)> = futures::stream::iter(sample.iter().copied())
                .map(|certificate| self.lookup(certificate, by_serial))
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            let seconds = started.elapsed().as_secs_f64();
            outcomes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let at =
                |q: f64| outcomes[((outcomes.len() as f64 * q) as usize).min(outcomes.len() - 1)].0;
            let missed = outcomes.iter().filter(|(_, found)| !found).count();
            let kind = if by_serial { "serial" } else { "hostname" };
            println!(
                "lookups by {kind}: {} in {seconds:.2} s, p50 {:.1} ms, p99 {:.1} ms, {missed} \
                 not found",
                outcomes.len(),
                at(0.5),
                at(0.99)
            );
            checks.found(self.day, kind, outcomes.len(), missed);
        }
        Ok(())
    }

    async fn lookup(&self, certificate: u32, by_serial: bool) -> Result<(f64, bool), Error> {
        let lookup = if by_serial {
            CertificateLookup::Serial(fleet::serial(certificate, self.day))
        } else {
            CertificateLookup::Hostname(fleet::hostname(certificate))
        };
        let search = CertificateSearch {
            lookup,
            after: None,
            limit: 50,
        };
        let started = Instant::now();
        let found = self.store.search_certificates(&search).await?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        let sha256 = fleet::sha256(certificate, self.day);
        Ok((ms, found.iter().any(|c| c.sha256 == sha256)))
    }

    /// Endpoints no report mentioned on the window's days, today included, retire (the
    /// sockets that moved; the service's `retention.endpoint_days`); an hour later what
    /// is older than the retention windows is pruned, and the tables vacuumed (as
    /// autovacuum would, between days). So each day's retirements are pruned the next day, when they are a window
    /// old, like the day's certificates: the database holds one day and the space of the
    /// day before, from day 2 on.
    async fn retention(&self, at: OffsetDateTime) -> Result<(), Error> {
        self.clock.set(at);
        let window = Duration::days(i64::from(self.args.retention_days));
        let started = Instant::now();
        // Not reported on the last `retention_days` simulated days, today included.
        let unseen = at - at.replace_time(time::Time::MIDNIGHT) + window - Duration::days(1);
        let retired = self.store.retire_endpoints(unseen).await?;
        println!(
            "retire: {:.1} s, {retired} endpoints retired",
            started.elapsed().as_secs_f64()
        );
        // The service's retention (the scheduler's `[retention]`), all of it at once: the
        // day's certificates, observations and hosts older than the window.
        let policy = RetentionPolicy {
            certificates: Some(window),
            observations: Some(window),
            hosts: Some(window),
            batch: MAX_PRUNE_BATCH,
        };
        self.clock.set(at + Duration::hours(1));
        let started = Instant::now();
        let pruned = self.store.prune(&policy).await?;
        let seconds = started.elapsed().as_secs_f64();
        let rows = pruned.by_kind().iter().map(|(_, n)| n).sum::<u64>();
        println!(
            "retention: {seconds:.1} s, {} certificates, {} observations, {} endpoints, {} hosts \
             pruned ({:.0} rows/s)",
            pruned.certificates,
            pruned.observations,
            pruned.endpoints,
            pruned.hosts,
            rows as f64 / seconds.max(1e-3)
        );
        self.vacuum("after retention").await
    }

    /// What autovacuum does in the hours between two stages of a real day: a simulated
    /// day lasts seconds to minutes, shorter than autovacuum's naptime, so without this
    /// every stage's updates would pile up as dead rows until the day's end.
    async fn vacuum(&self, after: &str) -> Result<(), Error> {
        let started = Instant::now();
        sqlx::query("VACUUM (ANALYZE)")
            .execute(self.store.pool())
            .await?;
        println!("vacuum ({after}): {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }
}
