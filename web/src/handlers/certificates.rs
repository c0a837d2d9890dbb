//! `GET /api/v1/certificates` (by hostname, serial, fingerprint, issuer or expiry window)
//! and `GET /api/v1/certificates/{sha256}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use certfleet_store::{
    normalize_fingerprint, CertificateDetail, CertificateHistory, CertificateLookup,
    CertificateRecord, CertificateSearch, NotificationRecord, ReadModel,
};
use serde::Deserialize;

use super::params::{parse_limit, parse_window, present, sha256_cursor, Page};
use crate::extract::ApiQuery;
use crate::responses;
use crate::{ApiError, AppState};

/// The parameters of certificate lists, in the API and on the pages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateQuery {
    pub hostname: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
    pub issuer: Option<String>,
    pub expiring_within: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// What a certificate list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Certificates a lookup finds, newest expiry first.
    Lookup(CertificateLookup),
    /// Leaves in use expiring within a window, soonest first.
    Expiring(time::Duration),
}

const LISTINGS: [&str; 5] = [
    "hostname",
    "serial",
    "fingerprint",
    "issuer",
    "expiring_within",
];

impl CertificateQuery {
    /// The one listing asked for; exactly one of its parameters must be given.
    pub fn listing(&self) -> Result<Listing, ApiError> {
        let given: Vec<(&str, &str)> = [
            ("hostname", &self.hostname),
            ("serial", &self.serial),
            ("fingerprint", &self.fingerprint),
            ("issuer", &self.issuer),
            ("expiring_within", &self.expiring_within),
        ]
        .into_iter()
        .filter_map(|(name, value)| present(value).map(|value| (name, value)))
        .collect();
        let (name, value) = match given.as_slice() {
            [one] => *one,
            [] => {
                return Err(ApiError::bad_request(
                    format!("give one of {}", LISTINGS.join(", ")),
                    Some("hostname".into()),
                ))
            }
            [_, second, ..] => {
                return Err(ApiError::bad_request(
                    format!("give only one of {}", LISTINGS.join(", ")),
                    Some(second.0.into()),
                ))
            }
        };
        let value = value.to_owned();
        Ok(match name {
            "hostname" => Listing::Lookup(CertificateLookup::Hostname(value)),
            "serial" => Listing::Lookup(CertificateLookup::Serial(value)),
            "fingerprint" => Listing::Lookup(CertificateLookup::Fingerprint(value)),
            "issuer" => Listing::Lookup(CertificateLookup::Issuer(value)),
            _ => Listing::Expiring(parse_window(&value, "expiring_within")?),
        })
    }
}

/// A certificate of a list: its record, and for expiry lists how many endpoints serve it.
#[derive(Debug)]
pub struct ListedCertificate {
    pub certificate: CertificateRecord,
    pub endpoints: Option<u64>,
}

impl From<ListedCertificate> for responses::ListedCertificate {
    fn from(listed: ListedCertificate) -> Self {
        responses::ListedCertificate {
            certificate: listed.certificate.into(),
            endpoints: listed.endpoints,
        }
    }
}

/// One page of a certificate list.
pub async fn page(
    store: &Arc<dyn ReadModel>,
    query: &CertificateQuery,
) -> Result<(Listing, Page<ListedCertificate>), ApiError> {
    let listing = query.listing()?;
    let limit = parse_limit(query.limit.as_deref())?;
    let after = sha256_cursor(query.cursor.as_deref())?;
    let items: Vec<ListedCertificate> = match &listing {
        Listing::Lookup(lookup) => {
            let search = CertificateSearch {
                lookup: lookup.clone(),
                after,
                limit,
            };
            store
                .search_certificates(&search)
                .await?
                .into_iter()
                .map(|certificate| ListedCertificate {
                    certificate,
                    endpoints: None,
                })
                .collect()
        }
        Listing::Expiring(within) => store
            .expiring_leaves(*within, after.as_deref(), limit)
            .await?
            .into_iter()
            .map(|expiring| ListedCertificate {
                certificate: expiring.certificate,
                endpoints: Some(expiring.endpoints),
            })
            .collect(),
    };
    let page = Page::new(items, limit, |item| item.certificate.sha256.clone());
    Ok((listing, page))
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CertificateQuery>,
) -> Result<Json<Page<responses::ListedCertificate>>, ApiError> {
    let (_, page) = page(&state.reads, &query).await?;
    Ok(Json(page.map(Into::into)))
}

/// One certificate with everything known about it.
#[derive(Debug)]
pub struct CertificateView {
    pub detail: CertificateDetail,
    /// Owner tags of the endpoints serving it now, and owners it was notified to.
    pub owners: Vec<String>,
    /// Its notifications and their delivery state, newest first.
    pub notifications: Vec<NotificationRecord>,
    /// What it replaced and what replaced it.
    pub history: CertificateHistory,
}

/// Loads a certificate by SHA-256 or SHA-1 fingerprint (any case, colons allowed).
/// Reads from `state.reads`, the notifications (the outbox's) from the primary.
pub async fn load(state: &AppState, fingerprint: &str) -> Result<CertificateView, ApiError> {
    let store = &state.reads;
    let fingerprint = normalize_fingerprint(fingerprint).map_err(|_| {
        ApiError::bad_request(
            "sha256 must be 64 hex digits (or a SHA-1 of 40)",
            Some("sha256".into()),
        )
    })?;
    let sha256 = if fingerprint.len() == 64 {
        fingerprint
    } else {
        let search = CertificateSearch {
            lookup: CertificateLookup::Fingerprint(fingerprint),
            after: None,
            limit: 1,
        };
        let found = store.search_certificates(&search).await?;
        found.into_iter().next().ok_or(ApiError::NotFound)?.sha256
    };
    let detail = store.certificate(&sha256).await?;
    let notifications = state.store.certificate_notifications(&sha256).await?;
    let history = store.certificate_history(&sha256).await?;
    let mut owners: Vec<String> = detail
        .served_at
        .iter()
        .filter(|at| at.current)
        .filter_map(|at| at.tags.owner.clone())
        .chain(notifications.iter().map(|n| n.owner.clone()))
        .collect();
    owners.sort();
    owners.dedup();
    Ok(CertificateView {
        detail,
        owners,
        notifications,
        history,
    })
}

pub async fn show(
    State(state): State<AppState>,
    Path(sha256): Path<String>,
) -> Result<Json<responses::CertificateDetail>, ApiError> {
    let view = load(&state, &sha256).await?;
    Ok(Json(responses::CertificateDetail::new(
        view.detail,
        view.owners,
        view.notifications,
        view.history,
    )))
}
