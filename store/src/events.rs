//! Change events (docs/events.md): each is written to the `events` outbox in the
//! transaction of the change it describes ([`crate::write::events`]), and the `events`
//! role publishes the outbox in order ([`EventStore`]). A supertrait of
//! [`Store`](crate::Store), so `Arc<dyn Store>` offers it.

use async_trait::async_trait;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::Result;

/// What changed: an event's `kind`, and the last part of its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new endpoint (address, port, name) was reported, configured or named.
    EndpointDiscovered,
    /// An endpoint no report mentioned for `retention.endpoint_days` retired.
    EndpointRetired,
    /// A certificate was seen for the first time anywhere.
    CertificateFirstSeen,
    /// An endpoint now serves another leaf than before.
    CertificateRotated,
    /// A certificate crossed an expiry threshold (a digest item was enqueued).
    CertificateExpiring,
    /// A finding appeared on an endpoint's current observation.
    FindingRaised,
    /// A finding of an endpoint's current observation went away.
    FindingCleared,
    /// An endpoint's client-certificate policy changed.
    MtlsChanged,
    /// A notification was delivered.
    NotificationSent,
    /// A notification delivery failed (it will be retried).
    NotificationFailed,
}

impl EventKind {
    /// Every kind, in the order of docs/events.md.
    pub const ALL: [EventKind; 10] = [
        EventKind::EndpointDiscovered,
        EventKind::EndpointRetired,
        EventKind::CertificateFirstSeen,
        EventKind::CertificateRotated,
        EventKind::CertificateExpiring,
        EventKind::FindingRaised,
        EventKind::FindingCleared,
        EventKind::MtlsChanged,
        EventKind::NotificationSent,
        EventKind::NotificationFailed,
    ];

    /// The kind as events carry it (`endpoint.discovered`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::EndpointDiscovered => "endpoint.discovered",
            EventKind::EndpointRetired => "endpoint.retired",
            EventKind::CertificateFirstSeen => "certificate.first_seen",
            EventKind::CertificateRotated => "certificate.rotated",
            EventKind::CertificateExpiring => "certificate.expiring",
            EventKind::FindingRaised => "finding.raised",
            EventKind::FindingCleared => "finding.cleared",
            EventKind::MtlsChanged => "mtls.changed",
            EventKind::NotificationSent => "notification.sent",
            EventKind::NotificationFailed => "notification.failed",
        }
    }
}

/// An event of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Its place in the outbox (publishing order).
    pub seq: i64,
    /// Its id: 32 lowercase hex digits, fixed when it was written; the `Nats-Msg-Id`.
    pub id: String,
    /// Its kind (`endpoint.discovered`).
    pub kind: String,
    /// When the change happened (the store's clock, in the change's transaction).
    pub at: OffsetDateTime,
    /// The entity: the event's fields besides `id`, `kind` and `at`.
    pub data: serde_json::Value,
}

impl OutboxEvent {
    /// The event as published: one JSON object with `id`, `kind`, `at` and the entity.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = match &self.data {
            serde_json::Value::Object(fields) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        object.insert("id".into(), self.id.clone().into());
        object.insert("kind".into(), self.kind.clone().into());
        object.insert("at".into(), rfc3339(self.at).into());
        serde_json::Value::Object(object)
    }
}

/// A time as events carry it: RFC 3339, UTC, whole seconds.
pub fn rfc3339(time: OffsetDateTime) -> String {
    let time = time
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(time);
    time.format(&Rfc3339).unwrap_or_default()
}

/// The outbox, as the publisher sees it.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// The first `limit` events not published yet, in outbox order.
    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>>;

    /// Marks these events (by `seq`) published, in one statement; returns how many were
    /// not marked before.
    async fn events_published(&self, seqs: &[i64]) -> Result<u64>;

    /// Deletes events published more than `older_than` ago; returns how many.
    async fn prune_events(&self, older_than: Duration) -> Result<u64>;

    /// How many events wait to be published.
    async fn event_backlog(&self) -> Result<u64>;
}
