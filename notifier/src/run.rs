//! One notification run: decide what is due, claim it, resolve what no longer stands,
//! then deliver the outbox: one digest per owner, failures recorded with their reason
//! and retried with back-off.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use certfleet_store::{CertificateRecord, Clock, EndpointId, NotificationClaim, Resolution, Store};
use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::confirm::{Confirm, Confirmed};
use crate::digest::{self, Digest, Item, Part, Reason};
use crate::error::Result;
use crate::plan::{cleanup, Decision, Key};
use crate::policy::Level;
use crate::settings::Settings;
use crate::transport::{message, DeliveryError, Mailer};
use crate::webhook::{self, Poster, RECIPIENT_PREFIX};

/// Leases taken in one run at most: a guard against a loop, far above any real outbox.
const MAX_ROUNDS: usize = 100_000;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// (certificate, endpoint) pairs read.
    pub candidates: usize,
    /// (certificate, owner) pairs with something due.
    pub due: usize,
    /// Notifications this run claimed.
    pub claimed: u64,
    /// Notifications resolved (no longer served, or muted).
    pub resolved: u64,
    /// Digests delivered.
    pub digests_sent: usize,
    /// Notifications those digests delivered.
    pub notifications_sent: u64,
    /// Digests that failed, with the reason.
    pub failures: Vec<Failure>,
    /// Digests not sent because this run no longer held their lease when their turn
    /// came (it was paused past the lease, and another scheduler took them over).
    pub lease_lost: usize,
    /// Endpoints probed again before mail about them (`confirm_within`).
    pub confirmed: Confirmed,
    /// (certificate, owner) pairs due before those probes and no longer served after
    /// them: rotated, not mailed about (their pending notifications resolve as rotated).
    pub rotated: usize,
    /// When the earliest pending notification may be attempted again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// A digest that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Its owner.
    pub owner: String,
    /// Why.
    pub error: String,
}

/// A notification to put in a digest: claimed (`id`), or only planned (dry run).
#[derive(Debug, Clone)]
struct Entry {
    id: Option<i64>,
    sha256: String,
    owner: String,
    threshold: String,
}

/// One lease's notifications, rendered: what [`Notifier::deliver`] sends.
struct Round {
    /// The lease's fencing token.
    lease: String,
    /// When it was taken (before the lease was asked for): until a third of the lease has
    /// passed since, no heartbeat has run and no other scheduler can have taken it over.
    leased_at: OffsetDateTime,
    /// One per owner (or per part of an owner's digest).
    digests: Vec<Digest>,
    /// Leased ids that no longer stand: resolved as no longer served.
    stale: Vec<i64>,
    /// Failed attempts so far, by id: the next back-off.
    attempts: HashMap<i64, u32>,
}

/// What became of one digest.
enum Outcome {
    /// Delivered; this many notifications recorded as sent.
    Sent(u64),
    /// Not delivered, for this reason; the retry is scheduled.
    Failed(String),
    /// Not attempted: its lease is no longer this run's.
    LeaseLost,
    /// Not started: another digest of the run failed on the store, so the run ends.
    NotStarted,
}

/// Decides and delivers expiry notifications. Any number of notifiers may share one
/// database: claims and leases keep each notification to one of them.
#[derive(Debug)]
pub struct Notifier {
    store: Arc<dyn Store>,
    settings: Settings,
    mailer: Mailer,
    /// Posts to the webhooks.
    poster: Poster,
    clock: Arc<dyn Clock>,
    worker: String,
    /// Random, per notifier: with `worker` and `leases`, makes each lease's token unique
    /// even between processes that share a name (`notifier/1` in every container).
    nonce: u64,
    /// Leases taken so far.
    leases: AtomicU64,
    /// Probes endpoints again before mail about them; `None`: mail rests on the last
    /// scheduled probe.
    confirm: Option<Arc<dyn Confirm>>,
}

impl Notifier {
    /// Checks the settings and builds the transport (no connection yet).
    pub fn new(store: Arc<dyn Store>, settings: Settings, clock: Arc<dyn Clock>) -> Result<Self> {
        settings.check()?;
        let mailer = Mailer::new(&settings)?;
        let poster = Poster::new(settings.webhook_timeout)?;
        Ok(Notifier {
            store,
            settings,
            mailer,
            poster,
            clock,
            worker: format!("notifier/{}", std::process::id()),
            nonce: RandomState::new().hash_one(std::process::id()),
            leases: AtomicU64::new(0),
            confirm: None,
        })
    }

    /// Probes endpoints again with `confirm` before mail about them, when their last
    /// probe is older than `confirm_within`.
    pub fn with_confirm(mut self, confirm: Arc<dyn Confirm>) -> Self {
        self.confirm = Some(confirm);
        self
    }

    /// Names this notifier in leases (default `notifier/<pid>`); each lease's token is
    /// this name, a random part and a count.
    pub fn with_worker(mut self, worker: impl Into<String>) -> Self {
        self.worker = worker.into();
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What is served and due now.
    pub async fn decide(&self) -> Result<(Decision, usize)> {
        let now = self.clock.now();
        let candidates = self
            .store
            .notification_candidates(now + self.settings.window())
            .await?;
        let mutes = self.store.muted_certificates().await?;
        let decision = Decision::new(&candidates, &mutes, &self.settings, now);
        Ok((decision, candidates.len()))
    }

    /// One run: decide (confirming what mail would be about), claim, resolve, deliver
    /// everything due in the outbox.
    pub async fn run_once(&self) -> Result<RunReport> {
        let (decision, candidates) = self.decide().await?;
        let (decision, confirmed, rotated) = self.confirmed(decision).await?;
        let claims = decision.claims();
        let mut report = RunReport {
            candidates,
            due: claims.len(),
            claimed: self.store.claim_notifications(&claims).await?,
            confirmed,
            rotated: rotated.len(),
            ..RunReport::default()
        };
        let open = self.store.open_notifications().await?;
        let stale = cleanup(&decision, &open);
        // Claim the notices before resolving, so that a crash in between loses none.
        report.claimed += self.store.claim_notifications(&stale.notices).await?;
        // Pending rows of a rotation the confirming probes saw: rotated, not "no longer
        // served" (what the owner is told is the same: nothing).
        let pending_rotated: HashSet<i64> = open
            .iter()
            .filter(|row| row.is_pending())
            .filter(|row| rotated.contains(&(row.sha256.clone(), row.owner.clone())))
            .map(|row| row.id)
            .collect();
        let (rotated_ids, not_served): (Vec<i64>, Vec<i64>) = stale
            .not_served
            .iter()
            .partition(|id| pending_rotated.contains(id));
        report.resolved += self
            .store
            .resolve_notifications(&rotated_ids, Resolution::Rotated)
            .await?;
        report.resolved += self
            .store
            .resolve_notifications(&not_served, Resolution::NotServed)
            .await?;
        report.resolved += self
            .store
            .resolve_notifications(&stale.muted, Resolution::Muted)
            .await?;
        // The next round is leased and rendered while this one is sent: sending never
        // waits on the database between rounds (a lease round over 100,000 pending rows
        // takes a tenth of a second or more, and the default owner's round rendering
        // thousands of certificates longer).
        let mut next = self.next_round(&decision).await?;
        for _ in 0..MAX_ROUNDS {
            let Some(round) = next.take() else { break };
            let (delivered, following) =
                tokio::join!(self.deliver(round, &mut report), self.next_round(&decision));
            delivered?;
            next = following?;
        }
        report.next_attempt_at = self.store.notification_status(0).await?.next_attempt_at;
        Ok(report)
    }

    /// Probes again (with the [`Confirm`] given) the endpoints that mail would now be
    /// about and whose last probe is older than `confirm_within`, then decides again.
    /// Returns the new decision, what the probes did, and the (certificate, owner) pairs
    /// that were due before and are no longer served: rotated.
    async fn confirmed(&self, decision: Decision) -> Result<(Decision, Confirmed, HashSet<Key>)> {
        let Some(confirm) = &self.confirm else {
            return Ok((decision, Confirmed::default(), HashSet::new()));
        };
        let mailed = self.about_to_mail(&decision).await?;
        let probed_before = self.clock.now() - self.settings.confirm_within;
        let mut endpoints: Vec<EndpointId> = mailed
            .iter()
            .filter_map(|key| decision.served.get(key))
            .flat_map(|served| &served.endpoints)
            .filter(|at| at.probed_at.is_none_or(|probed| probed < probed_before))
            .map(|at| at.endpoint_id)
            .collect();
        endpoints.sort_unstable_by_key(|id| id.0);
        endpoints.dedup();
        if endpoints.is_empty() {
            return Ok((decision, Confirmed::default(), HashSet::new()));
        }
        let count = endpoints.len();
        let confirmed = confirm.confirm(endpoints, self.settings.confirm_wait).await;
        tracing::info!(
            endpoints = count,
            probed = confirmed.probed,
            failed = confirmed.failed,
            skipped = confirmed.skipped,
            "endpoints probed again before mail about them"
        );
        let (again, _) = self.decide().await?;
        let rotated: HashSet<Key> = mailed
            .into_iter()
            .filter(|key| !again.served.contains_key(key))
            .collect();
        Ok((again, confirmed, rotated))
    }

    /// The (certificate, owner) pairs a run would mail about now: a level due that was
    /// never claimed, or a pending notification due for an attempt.
    async fn about_to_mail(&self, decision: &Decision) -> Result<HashSet<Key>> {
        let claims = decision.claims();
        let existing: HashSet<NotificationClaim> = self
            .store
            .existing_claims(&claims)
            .await?
            .into_iter()
            .collect();
        let mut keys: HashSet<Key> = claims
            .into_iter()
            .filter(|claim| !existing.contains(claim))
            .map(|claim| (claim.sha256, claim.owner))
            .collect();
        let now = self.clock.now();
        keys.extend(
            self.store
                .open_notifications()
                .await?
                .into_iter()
                .filter(|row| row.is_pending())
                .filter(|row| row.next_attempt_at.is_none_or(|at| at <= now))
                .map(|row| (row.sha256, row.owner))
                .filter(|key| decision.served.contains_key(key)),
        );
        Ok(keys)
    }

    /// The digests a run would send now, without claiming or sending anything.
    pub async fn dry_run(&self) -> Result<Vec<Digest>> {
        let (decision, _) = self.decide().await?;
        let open = self.store.open_notifications().await?;
        let stale = cleanup(&decision, &open);
        let mut planned = decision.claims();
        planned.extend(stale.notices);
        let existing: HashSet<NotificationClaim> = self
            .store
            .existing_claims(&planned)
            .await?
            .into_iter()
            .collect();
        let dropped: HashSet<i64> = stale
            .not_served
            .iter()
            .chain(&stale.muted)
            .copied()
            .collect();
        let now = self.clock.now();
        let mut entries: Vec<Entry> = planned
            .into_iter()
            .filter(|claim| !existing.contains(claim))
            .map(|claim| Entry {
                id: None,
                sha256: claim.sha256,
                owner: claim.owner,
                threshold: claim.threshold,
            })
            .collect();
        entries.extend(
            open.into_iter()
                .filter(|row| row.is_pending() && !dropped.contains(&row.id))
                .filter(|row| row.next_attempt_at.is_none_or(|at| at <= now))
                .map(|row| Entry {
                    id: Some(row.id),
                    sha256: row.sha256,
                    owner: row.owner,
                    threshold: row.threshold,
                }),
        );
        let (digests, _) = self.digests(&decision, entries).await?;
        Ok(digests)
    }

    /// Sends a test message to `to` through the configured transport.
    pub async fn send_test(&self, to: &str) -> Result<()> {
        let text = format!(
            "This is a test message from certfleet.\n\nIf you can read it, expiry \
             digests can reach this address through {}.\n",
            self.settings.delivery_name()
        );
        let digest = Digest {
            to: to.to_owned(),
            subject: "[certfleet] test message".into(),
            html: format!("<p>{}</p>", text.trim().replace("\n\n", "</p><p>")),
            text,
            ids: Vec::new(),
            body: None,
            certificates: Vec::new(),
        };
        self.mailer
            .send(message(&self.settings.from, &digest)?)
            .await?;
        Ok(())
    }

    /// A fencing token for one lease: `<worker>/<nonce>.<count>`.
    fn next_lease(&self) -> String {
        let count = self.leases.fetch_add(1, Ordering::Relaxed);
        format!("{}/{:016x}.{count}", self.worker, self.nonce)
    }

    /// Leases the notifications of the next owners due and renders their digests;
    /// `None` when nothing is left to send.
    async fn next_round(&self, decision: &Decision) -> Result<Option<Round>> {
        let lease = self.next_lease();
        let leased_at = self.clock.now();
        let leased = self
            .store
            .lease_notifications(
                &lease,
                self.settings.owners_per_lease,
                self.settings.lease_for,
            )
            .await?;
        if leased.is_empty() {
            return Ok(None);
        }
        let attempts = leased.iter().map(|row| (row.id, row.attempts)).collect();
        let entries = leased
            .into_iter()
            .map(|row| Entry {
                id: Some(row.id),
                sha256: row.sha256,
                owner: row.owner,
                threshold: row.threshold,
            })
            .collect();
        let (digests, stale) = self.digests(decision, entries).await?;
        Ok(Some(Round {
            lease,
            leased_at,
            digests,
            stale,
            attempts,
        }))
    }

    /// Sends and records one round's digests, and renews its lease while it does: the
    /// round may take longer than one lease (a slow SMTP server, many digests queued
    /// behind the `concurrency` in flight), and a lease that ran out while its digest was
    /// being sent let another scheduler send it again.
    async fn deliver(&self, round: Round, report: &mut RunReport) -> Result<()> {
        let Round {
            lease,
            leased_at,
            digests,
            stale,
            attempts,
        } = round;
        let lease = lease.as_str();
        report.resolved += self
            .store
            .resolve_notifications(&stale, Resolution::NotServed)
            .await?;
        let held: Vec<i64> = digests.iter().flat_map(|d| d.ids.iter().copied()).collect();
        // Each digest is sent and recorded in its own task, so that recording one never
        // holds up the sending of the others. When one fails on the store, no further
        // digest starts, but those in flight are carried to the end: one may have been
        // sent and be waiting to record it, and dropping it then would send it again later
        // (seen when PostgreSQL was killed mid-run).
        let attempts = &attempts;
        let stop = &std::sync::atomic::AtomicBool::new(false);
        let sending = async {
            let mut outcomes = futures::stream::iter(digests)
                .map(|digest| async move {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return (digest, Ok(Outcome::NotStarted));
                    }
                    let outcome = self
                        .send_and_record(&digest, lease, leased_at, attempts)
                        .await;
                    (digest, outcome)
                })
                .buffer_unordered(self.settings.concurrency.max(1));
            let mut first_error = None;
            while let Some((digest, outcome)) = outcomes.next().await {
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        first_error.get_or_insert(error);
                        continue;
                    }
                };
                match outcome {
                    Outcome::Sent(recorded) => {
                        report.digests_sent += 1;
                        report.notifications_sent += recorded;
                    }
                    Outcome::Failed(reason) => report.failures.push(Failure {
                        owner: digest.to,
                        error: reason,
                    }),
                    Outcome::LeaseLost => report.lease_lost += 1,
                    Outcome::NotStarted => {}
                }
            }
            first_error.map_or(Ok(()), Err)
        };
        tokio::select! {
            sent = sending => sent,
            never = self.heartbeat(lease, held) => match never {},
        }
    }

    /// Renews `lease` on `ids` every third of the lease time, for as long as it is
    /// polled; ids sent, failed or taken over drop out. Never returns.
    async fn heartbeat(&self, lease: &str, mut ids: Vec<i64>) -> std::convert::Infallible {
        let every = std::time::Duration::try_from(self.settings.lease_for / 3)
            .unwrap_or(std::time::Duration::ZERO)
            .max(std::time::Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            if ids.is_empty() {
                continue;
            }
            match self
                .store
                .renew_notification_lease(lease, &ids, self.settings.lease_for)
                .await
            {
                Ok(held) => ids = held,
                // The next beat tries again; the lease still has two thirds to run.
                Err(error) => tracing::warn!(%error, "cannot renew the notifications' lease"),
            }
        }
    }

    /// Sends one digest and records the outcome, unless `lease` no longer holds every
    /// notification in it: checked, and renewed, just before sending, once a third of the
    /// lease has passed since it was taken at `leased_at`. Before that the lease still has
    /// two thirds to run, so the check would only cost the outbox a write per digest.
    #[tracing::instrument(name = "send", skip_all, fields(to = %digest.to, notifications = digest.ids.len()))]
    async fn send_and_record(
        &self,
        digest: &Digest,
        lease: &str,
        leased_at: OffsetDateTime,
        attempts: &HashMap<i64, u32>,
    ) -> Result<Outcome> {
        if self.clock.now() >= leased_at + self.settings.lease_for / 3 {
            let held = self
                .store
                .renew_notification_lease(lease, &digest.ids, self.settings.lease_for)
                .await?;
            if held.len() < digest.ids.len() {
                // Whoever holds them now sends them (or a later run, for the ones still
                // held here: their lease runs out).
                tracing::warn!(owner = %digest.to, "lease lost before sending; digest left to its holder");
                return Ok(Outcome::LeaseLost);
            }
        }
        match self.transmit(digest).await {
            Ok(()) => Ok(Outcome::Sent(self.record_sent(&digest.ids).await?)),
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(owner = %digest.to, error = %reason, "digest not delivered");
                let before = digest.ids.iter().filter_map(|id| attempts.get(id)).max();
                let attempt = before.copied().unwrap_or(0) + 1;
                let delay = error.retry_delay(&self.settings.retry, attempt);
                let retry_at = self.clock.now() + delay;
                // Only what this lease still holds: a failure recorded on notifications
                // another scheduler took over would end its lease while it sends them.
                let held = self
                    .store
                    .renew_notification_lease(lease, &digest.ids, self.settings.lease_for)
                    .await?;
                self.store
                    .notifications_failed(&held, &reason, retry_at)
                    .await?;
                Ok(Outcome::Failed(reason))
            }
        }
    }

    /// Hands a digest to its transport: a webhook's body is posted to it, anything else
    /// is mailed.
    async fn transmit(&self, digest: &Digest) -> Result<(), DeliveryError> {
        let Some(body) = &digest.body else {
            return self
                .mailer
                .send(message(&self.settings.from, digest)?)
                .await;
        };
        let Some(webhook) = self.settings.webhook(&digest.to) else {
            return Err(DeliveryError::Message(format!(
                "{} is not configured",
                digest.to
            )));
        };
        let delivery = webhook::delivery_id(&digest.ids);
        let timestamp = self.clock.now().unix_timestamp();
        self.poster
            .post(webhook, body.clone(), &delivery, timestamp)
            .await
            .map_err(|error| DeliveryError::Webhook {
                name: webhook.name.clone(),
                error,
            })
    }

    /// Records a delivered digest. The message is already out: while the database is
    /// unavailable, this keeps trying (for half the lease this run holds on it), because a
    /// digest whose delivery is not recorded is sent again once the lease expires.
    async fn record_sent(&self, ids: &[i64]) -> Result<u64> {
        let patience = std::time::Duration::try_from(self.settings.lease_for / 2)
            .unwrap_or(std::time::Duration::ZERO);
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match self.store.notifications_sent(ids).await {
                Err(error) if error.is_unavailable() && started.elapsed() + wait < patience => {
                    tracing::warn!(%error, "cannot record a delivered digest; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
                recorded => return Ok(recorded?),
            }
        }
    }

    /// One digest per owner; also returns the claimed ids that no longer stand (neither
    /// served now nor a "no longer served" notice).
    async fn digests(
        &self,
        decision: &Decision,
        entries: Vec<Entry>,
    ) -> Result<(Vec<Digest>, Vec<i64>)> {
        let hashes: Vec<String> = entries
            .iter()
            .map(|e| e.sha256.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let certificates: HashMap<String, CertificateRecord> = self
            .store
            .certificates_by_sha256(&hashes)
            .await?
            .into_iter()
            .map(|c| (c.sha256.clone(), c))
            .collect();
        let mut by_owner: BTreeMap<&str, BTreeMap<&str, Vec<&Entry>>> = BTreeMap::new();
        for entry in &entries {
            let certificates = by_owner.entry(&entry.owner).or_default();
            certificates.entry(&entry.sha256).or_default().push(entry);
        }
        let now = decision.now.unwrap_or_else(|| self.clock.now());
        let resolved = Level::Resolved.key();
        let (mut digests, mut stale) = (Vec::new(), Vec::new());
        for (owner, by_certificate) in by_owner {
            let webhook = self.settings.webhook(owner);
            if webhook.is_none() && owner.starts_with(RECIPIENT_PREFIX) {
                // A webhook no longer configured: nobody to send its rows to.
                let rows = by_certificate.values().flatten();
                stale.extend(rows.filter_map(|row| row.id));
                continue;
            }
            let mut listed: Vec<(Item<'_>, Vec<i64>)> = Vec::new();
            for (sha256, rows) in by_certificate {
                let row_ids = rows.iter().filter_map(|row| row.id);
                let served = decision.served.get(&(sha256.to_owned(), owner.to_owned()));
                let reason = match served {
                    Some(served) => {
                        let claimed = rows.iter().filter_map(|r| Level::from_key(&r.threshold));
                        let level = claimed
                            .chain(served.level)
                            .filter(|l| *l != Level::Resolved)
                            .min();
                        level.map(|level| Reason::Expiring { served, level })
                    }
                    None if rows.iter().all(|row| row.threshold == resolved) => {
                        Some(Reason::Resolved)
                    }
                    None => None,
                };
                match (reason, certificates.get(sha256)) {
                    (Some(reason), Some(certificate)) => {
                        let item = Item {
                            certificate,
                            reason,
                        };
                        listed.push((item, row_ids.collect()));
                    }
                    _ => stale.extend(row_ids),
                }
            }
            listed.sort_by_key(|(item, _)| digest::urgency(item));
            // A digest goes out in parts of at most so many certificates, each its own
            // delivery of its own rows, so that no message grows with the fleet: the
            // default owner of a large fleet is due tens of thousands at once, one message
            // of 50 MB that mail servers refuse (Postfix takes 10 MB by default).
            let per_digest = match webhook {
                Some(_) => webhook::MAX_ITEMS,
                None => self.settings.max_per_email,
            }
            .max(1);
            let parts = listed.len().div_ceil(per_digest);
            for (index, part) in listed.chunks(per_digest).enumerate() {
                let number = Part {
                    number: index + 1,
                    of: parts,
                    certificates: listed.len(),
                };
                let items: Vec<Item<'_>> = part.iter().map(|(item, _)| item.clone()).collect();
                let ids: Vec<i64> = part
                    .iter()
                    .flat_map(|(_, ids)| ids.iter().copied())
                    .collect();
                let body = webhook.map(|webhook| (webhook, items.clone()));
                if let Some(mut digest) = digest::render(owner, items, number, &self.settings, now)
                {
                    digest.body = body.map(|(webhook, items)| {
                        let settings = &self.settings;
                        webhook::body(webhook, &digest.subject, &items, &ids, settings, now)
                    });
                    digest.ids = ids;
                    digests.push(digest);
                }
            }
        }
        Ok((digests, stale))
    }
}
