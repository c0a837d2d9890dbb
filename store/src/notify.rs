//! The notification outbox: what the expiry scheduler reads and claims, and how delivery
//! is recorded. A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers it.
//!
//! A claim is a row per (certificate, owner, threshold), inserted with `ON CONFLICT DO
//! NOTHING` under the table's unique constraint: whoever inserts it owns it, so two
//! schedulers never both claim it, and once claimed it stays until sent or resolved, so a
//! crash never loses it.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::error::Result;
use crate::notify_records::{
    Mute, NotificationCandidate, NotificationClaim, NotificationRecord, NotificationStatus,
    Resolution,
};
use crate::records::CertificateRecord;

/// The notification part of the store.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Every (certificate, active endpoint) where the certificate is in the endpoint's
    /// current chain and expires at or before `deadline`: leaves, and other chain
    /// certificates that expire before the leaf they are served with.
    async fn notification_candidates(
        &self,
        deadline: OffsetDateTime,
    ) -> Result<Vec<NotificationCandidate>>;

    /// Claims each (certificate, owner, threshold) not claimed before, as pending; returns
    /// how many this call claimed. Concurrent callers never both claim the same one.
    async fn claim_notifications(&self, claims: &[NotificationClaim]) -> Result<u64>;

    /// Which of these claims exist already, in any state (for a dry run).
    async fn existing_claims(&self, claims: &[NotificationClaim])
        -> Result<Vec<NotificationClaim>>;

    /// Notifications not resolved yet (pending or sent), in id order.
    async fn open_notifications(&self) -> Result<Vec<NotificationRecord>>;

    /// Resolves notifications: pending ones will not be sent. Returns how many changed.
    async fn resolve_notifications(&self, ids: &[i64], resolution: Resolution) -> Result<u64>;

    /// Leases the pending notifications that are due for an attempt, all of them for up
    /// to `owners` owners, to `worker` until now + `lease_for`; nobody else leases them
    /// before that. `worker` is the lease's fencing token: make it unique to this lease
    /// (see [`renew_notification_lease`](Self::renew_notification_lease)).
    async fn lease_notifications(
        &self,
        worker: &str,
        owners: u32,
        lease_for: Duration,
    ) -> Result<Vec<NotificationRecord>>;

    /// Extends the lease `worker` holds on these notifications to now + `lease_for`, and
    /// returns the ids it still holds: pending and leased to `worker`. A notification that
    /// was sent, failed or resolved since, or leased to someone else after this lease ran
    /// out, is neither renewed nor returned. A lease that ran out but was not taken over
    /// is renewed: nobody else can have sent it. The sender calls this as a heartbeat
    /// while it sends, and just before each message to check it still holds it.
    async fn renew_notification_lease(
        &self,
        worker: &str,
        ids: &[i64],
        lease_for: Duration,
    ) -> Result<Vec<i64>>;

    /// Records notifications as sent (and ends their lease).
    async fn notifications_sent(&self, ids: &[i64]) -> Result<u64>;

    /// Records a failed attempt: one more attempt, the reason, and the time before which
    /// they are not attempted again. Ends their lease.
    async fn notifications_failed(
        &self,
        ids: &[i64],
        error: &str,
        retry_at: OffsetDateTime,
    ) -> Result<u64>;

    /// Counts by state and up to `limit` failing notifications with their reasons.
    async fn notification_status(&self, limit: u32) -> Result<NotificationStatus>;

    /// Notifications of one certificate, newest first.
    async fn certificate_notifications(&self, sha256: &str) -> Result<Vec<NotificationRecord>>;

    /// Mutes a certificate (or changes its mute).
    async fn mute_certificate(
        &self,
        sha256: &str,
        reason: &str,
        until: OffsetDateTime,
    ) -> Result<Mute>;

    /// Ends a mute; false when the certificate was not muted.
    async fn unmute_certificate(&self, sha256: &str) -> Result<bool>;

    /// Mutes in force now.
    async fn muted_certificates(&self) -> Result<Vec<Mute>>;

    /// The certificates with these SHA-256s (unknown ones are left out).
    async fn certificates_by_sha256(&self, sha256: &[String]) -> Result<Vec<CertificateRecord>>;
}
