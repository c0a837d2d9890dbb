//! What the notification part of the store hands in and out, and how its rows are read
//! (once for both backends).

use std::fmt;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::records::{EndpointId, WorkloadTags};
use crate::rows::{socket, tags, ReadRow};

/// One certificate in the current chain of one active endpoint, with the facts its
/// owner is decided from. Leaves always; other chain certificates only when they expire
/// before the leaf they are served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationCandidate {
    /// The certificate's SHA-256.
    pub sha256: String,
    /// Start of its validity.
    pub not_before: OffsetDateTime,
    /// End of its validity.
    pub not_after: OffsetDateTime,
    /// Position in the served chain (0: leaf).
    pub position: u32,
    /// The endpoint serving it.
    pub endpoint_id: EndpointId,
    /// The endpoint's address.
    pub address: String,
    /// The endpoint's port.
    pub port: u16,
    /// SNI name sent to the endpoint, if any.
    pub sni: Option<String>,
    /// Name of the host that reported the endpoint.
    pub hostname: Option<String>,
    /// The workload's tags.
    pub tags: WorkloadTags,
    /// The workload's Kubernetes namespace (its `namespace` tag).
    pub namespace: Option<String>,
    /// The container's name (its `container` tag), else its id; `None` outside containers.
    pub container: Option<String>,
    /// When the endpoint was last probed; `None`: never.
    pub probed_at: Option<OffsetDateTime>,
    /// The status of that probe (`ok`, `timeout`, `refused`, ...).
    pub probe_status: Option<String>,
    /// When a probe last saw the endpoint serve its current chain (this certificate).
    pub seen_at: Option<OffsetDateTime>,
}

/// A (certificate, owner, threshold) to claim for sending.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationClaim {
    /// The certificate's SHA-256.
    pub sha256: String,
    /// The owner's email address.
    pub owner: String,
    /// The threshold crossed, e.g. `7d`, `late`, `expired`, `resolved`.
    pub threshold: String,
}

/// Why a notification ended without (more) mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// The owner's endpoints no longer serve the certificate (renewed, moved, removed).
    NotServed,
    /// The certificate was muted.
    Muted,
    /// A probe just before sending found the endpoints serving another certificate.
    Rotated,
}

impl Resolution {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::NotServed => "not_served",
            Resolution::Muted => "muted",
            Resolution::Rotated => "rotated",
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claimed notification and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    /// The row's id.
    pub id: i64,
    /// The certificate's SHA-256.
    pub sha256: String,
    /// The certificate's end of validity.
    pub not_after: OffsetDateTime,
    /// The owner's email address.
    pub owner: String,
    /// The threshold crossed.
    pub threshold: String,
    /// When it was claimed.
    pub created_at: OffsetDateTime,
    /// When it was sent; `None` while pending.
    pub sent_at: Option<OffsetDateTime>,
    /// Delivery attempts that failed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not attempted again before this time.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<OffsetDateTime>,
    /// Why it was resolved.
    pub resolution: Option<String>,
}

impl NotificationRecord {
    /// Neither sent nor resolved.
    pub fn is_pending(&self) -> bool {
        self.sent_at.is_none() && self.resolved_at.is_none()
    }
}

/// The state of the outbox, for `certfleet notify --status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationStatus {
    /// Claimed, not sent, not resolved.
    pub pending: u64,
    /// Pending rows with at least one failed attempt.
    pub failing: u64,
    /// Sent.
    pub sent: u64,
    /// Resolved: nothing more will be sent (sent ones included).
    pub resolved: u64,
    /// The earliest time a pending row may be attempted (again): its retry time, or the
    /// end of its lease while another scheduler holds it.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Pending rows with a failed attempt, most attempts first.
    pub failures: Vec<NotificationRecord>,
}

/// A quiet certificate: no notification while `muted_until` is in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// The certificate's SHA-256.
    pub sha256: String,
    /// Why, for the people who read `--status` later.
    pub reason: String,
    /// End of the quiet period.
    pub muted_until: OffsetDateTime,
    /// When it was muted.
    pub created_at: OffsetDateTime,
}

/// A certificate SHA-256 as stored: 64 hex digits, lower-cased.
pub(crate) fn sha256_key(text: &str) -> Result<String> {
    let text = text.trim().to_ascii_lowercase();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid("sha256", "must be 64 hexadecimal digits"));
    }
    Ok(text)
}

/// Candidates: certificates expiring before `$1` served by an active endpoint: its
/// current leaf (the copy on the endpoint, `leaf_not_after`, so that this is one index
/// range), and CA certificates of its current chain that expire before that leaf (a
/// partial index keeps those few apart from the many leaves). When the endpoint's current
/// observation was last seen is read by its key, per due row: joined, PostgreSQL 15 hashed
/// all observations (the nullable side of a left join), spilling to disk at a million,
/// 0.79 to 0.84 s against 0.56 to 0.62 s with the lookup (work_mem 32 MB, bench/notify.sh).
pub(crate) const CANDIDATES: &str = "SELECT c.sha256, c.not_before, c.not_after, \
        0 AS position, e.id AS endpoint_id, e.address, e.port, e.sni, e.app, e.env, \
        e.owner, e.namespace, COALESCE(e.container_name, e.container) AS container, \
        h.hostname, e.last_probed_at, e.last_status, (SELECT o.last_seen FROM observations o \
            WHERE o.id = e.observation_id) AS seen_at \
    FROM endpoints e \
    JOIN certificates c ON c.sha256 = e.leaf_sha256 \
    LEFT JOIN hosts h ON h.id = e.host_id \
    WHERE e.retired_at IS NULL AND e.leaf_not_after <= $1 \
    UNION ALL \
    SELECT c.sha256, c.not_before, c.not_after, oc.position, e.id AS endpoint_id, \
        e.address, e.port, e.sni, e.app, e.env, e.owner, e.namespace, \
        COALESCE(e.container_name, e.container) AS container, h.hostname, \
        e.last_probed_at, e.last_status, (SELECT o.last_seen FROM observations o \
            WHERE o.id = e.observation_id) AS seen_at \
    FROM certificates c \
    JOIN observation_chain oc ON oc.sha256 = c.sha256 AND oc.position > 0 \
    JOIN endpoints e ON e.observation_id = oc.observation_id AND e.retired_at IS NULL \
    LEFT JOIN hosts h ON h.id = e.host_id \
    WHERE c.is_ca AND c.not_after <= $1 AND c.not_after < e.leaf_not_after";

/// A row of [`CANDIDATES`].
pub(crate) fn candidate(row: &impl ReadRow) -> Result<NotificationCandidate> {
    let (address, port, sni) = socket(row)?;
    Ok(NotificationCandidate {
        sha256: row.text("sha256")?,
        not_before: row.time("not_before")?,
        not_after: row.time("not_after")?,
        position: row.number("position")?,
        endpoint_id: EndpointId(row.int("endpoint_id")?),
        address,
        port,
        sni,
        hostname: row.opt_text("hostname")?,
        tags: tags(row)?,
        namespace: row.opt_text("namespace")?,
        container: row.opt_text("container")?,
        probed_at: row.opt_time("last_probed_at")?,
        probe_status: row.opt_text("last_status")?,
        seen_at: row.opt_time("seen_at")?,
    })
}

/// `SELECT {NOTIFICATION_SELECT} WHERE ...` reads [`notification`] rows.
pub(crate) const NOTIFICATION_SELECT: &str = "SELECT n.id, n.sha256, c.not_after, n.owner, \
        n.threshold, n.created_at, n.sent_at, n.attempts, n.last_error, n.next_attempt_at, \
        n.resolved_at, n.resolution \
    FROM notifications n JOIN certificates c ON c.sha256 = n.sha256";

/// A row of [`NOTIFICATION_SELECT`].
pub(crate) fn notification(row: &impl ReadRow) -> Result<NotificationRecord> {
    Ok(NotificationRecord {
        id: row.int("id")?,
        sha256: row.text("sha256")?,
        not_after: row.time("not_after")?,
        owner: row.text("owner")?,
        threshold: row.text("threshold")?,
        created_at: row.time("created_at")?,
        sent_at: row.opt_time("sent_at")?,
        attempts: row.number("attempts")?,
        last_error: row.opt_text("last_error")?,
        next_attempt_at: row.opt_time("next_attempt_at")?,
        resolved_at: row.opt_time("resolved_at")?,
        resolution: row.opt_text("resolution")?,
    })
}

/// Counts of the outbox by state, with `$1` = now; read with [`status_counts`].
pub(crate) const STATUS_COUNTS: &str = "SELECT \
    COUNT(CASE WHEN sent_at IS NULL AND resolved_at IS NULL THEN 1 END) AS pending, \
    COUNT(CASE WHEN sent_at IS NULL AND resolved_at IS NULL AND attempts > 0 THEN 1 END) \
        AS failing, \
    COUNT(sent_at) AS sent, \
    COUNT(resolved_at) AS resolved, \
    MIN(CASE WHEN sent_at IS NOT NULL OR resolved_at IS NOT NULL THEN NULL \
        WHEN lease_until > COALESCE(next_attempt_at, created_at) THEN lease_until \
        ELSE COALESCE(next_attempt_at, created_at) END) AS next_attempt_at \
    FROM notifications";

/// The row of [`STATUS_COUNTS`], without the failures.
pub(crate) fn status_counts(row: &impl ReadRow) -> Result<NotificationStatus> {
    let count = |column| row.number::<u64>(column);
    Ok(NotificationStatus {
        pending: count("pending")?,
        failing: count("failing")?,
        sent: count("sent")?,
        resolved: count("resolved")?,
        next_attempt_at: row.opt_time("next_attempt_at")?,
        failures: Vec::new(),
    })
}

/// A row of `SELECT sha256, reason, muted_until, created_at FROM notification_mutes`.
pub(crate) fn mute(row: &impl ReadRow) -> Result<Mute> {
    Ok(Mute {
        sha256: row.text("sha256")?,
        reason: row.text("reason")?,
        muted_until: row.time("muted_until")?,
        created_at: row.time("created_at")?,
    })
}
