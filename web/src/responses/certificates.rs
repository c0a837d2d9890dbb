//! Certificates: list items, the detail, its history and notifications.

use certfleet_model::KeyInfo;
use certfleet_store as store;
use serde::Serialize;
use time::OffsetDateTime;

use super::rfc3339;

/// A certificate as lists and lookups show it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    pub sha256: String,
    /// Lowercase hex, no separators, no leading zeros.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub not_before: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub not_after: OffsetDateTime,
    pub sans: Vec<String>,
    pub key: KeyInfo,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
}

impl From<store::CertificateRecord> for CertificateSummary {
    fn from(record: store::CertificateRecord) -> Self {
        CertificateSummary {
            sha256: record.sha256,
            serial: record.serial,
            subject: record.subject,
            issuer: record.issuer,
            not_before: record.not_before,
            not_after: record.not_after,
            sans: record.sans,
            key: record.key,
            signature_algorithm: record.signature_algorithm,
            is_ca: record.is_ca,
            self_signed: record.self_signed,
            first_seen: record.seen.first_seen,
            last_seen: record.seen.last_seen,
        }
    }
}

/// A certificate of a list; expiry lists add how many endpoints serve it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedCertificate {
    #[serde(flatten)]
    pub certificate: CertificateSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<u64>,
}

/// `GET /certificates/{sha256}`: the certificate, where it is served, its owners, its
/// notifications and what it replaced or was replaced by.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateDetail {
    #[serde(flatten)]
    pub certificate: CertificateSummary,
    pub pem: Option<String>,
    /// SHA-256s of the most recently seen chain containing it, leaf first.
    pub chain: Vec<String>,
    pub served_at: Vec<ServedAt>,
    /// Owner tags of the endpoints serving it now, and owners it was notified to.
    pub owners: Vec<String>,
    /// Newest first.
    pub notifications: Vec<Notification>,
    pub history: CertificateHistory,
}

impl CertificateDetail {
    pub fn new(
        detail: store::CertificateDetail,
        owners: Vec<String>,
        notifications: Vec<store::NotificationRecord>,
        history: store::CertificateHistory,
    ) -> Self {
        CertificateDetail {
            certificate: detail.certificate.into(),
            pem: detail.pem,
            chain: detail.chain,
            served_at: detail.served_at.into_iter().map(ServedAt::from).collect(),
            owners,
            notifications: notifications.into_iter().map(Notification::from).collect(),
            history: history.into(),
        }
    }
}

/// An endpoint that serves or served a certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ServedAt {
    pub endpoint_id: i64,
    pub address: String,
    pub port: u16,
    pub sni: Option<String>,
    /// Position in the chain (0: leaf).
    pub position: u32,
    pub app: Option<String>,
    pub env: Option<String>,
    pub owner: Option<String>,
    /// Served there now.
    pub current: bool,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub last_seen: OffsetDateTime,
}

impl From<store::ServedAt> for ServedAt {
    fn from(at: store::ServedAt) -> Self {
        ServedAt {
            endpoint_id: at.endpoint_id.0,
            address: at.address,
            port: at.port,
            sni: at.sni,
            position: at.position,
            app: at.tags.app,
            env: at.tags.env,
            owner: at.tags.owner,
            current: at.current,
            first_seen: at.seen.first_seen,
            last_seen: at.seen.last_seen,
        }
    }
}

/// What a certificate replaced on its endpoints, and what replaced it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateHistory {
    pub replaced_by: Vec<Succession>,
    pub replaces: Vec<Succession>,
}

impl From<store::CertificateHistory> for CertificateHistory {
    fn from(history: store::CertificateHistory) -> Self {
        let list = |list: Vec<store::Succession>| list.into_iter().map(Succession::from).collect();
        CertificateHistory {
            replaced_by: list(history.replaced_by),
            replaces: list(history.replaces),
        }
    }
}

/// One certificate before or after another on the same endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct Succession {
    pub sha256: String,
    pub subject: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub not_after: OffsetDateTime,
    /// Endpoints where the one followed the other.
    pub endpoints: u64,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub first_seen: OffsetDateTime,
}

impl From<store::Succession> for Succession {
    fn from(succession: store::Succession) -> Self {
        Succession {
            sha256: succession.sha256,
            subject: succession.subject,
            not_after: succession.not_after,
            endpoints: succession.endpoints,
            first_seen: succession.first_seen,
        }
    }
}

/// A notification and its delivery state (`GET /notifications`, certificate details).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: i64,
    pub sha256: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub not_after: OffsetDateTime,
    pub owner: String,
    /// `30d`, `7d`, ..., `expired`.
    pub threshold: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub sent_at: Option<OffsetDateTime>,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub resolved_at: Option<OffsetDateTime>,
    /// `not_served`, `muted`, `rotated` once resolved without mail.
    pub resolution: Option<String>,
}

impl From<store::NotificationRecord> for Notification {
    fn from(record: store::NotificationRecord) -> Self {
        Notification {
            id: record.id,
            sha256: record.sha256,
            not_after: record.not_after,
            owner: record.owner,
            threshold: record.threshold,
            created_at: record.created_at,
            sent_at: record.sent_at,
            attempts: record.attempts,
            last_error: record.last_error,
            next_attempt_at: record.next_attempt_at,
            resolved_at: record.resolved_at,
            resolution: record.resolution,
        }
    }
}
