//! The JSON API's response types (the contract in docs/api.md): owned here, filled from
//! the store's records by `From`. The store's records are how the store answers; these are
//! what the API promises, so a change in one is a visible change in the other, never a
//! silent change of the contract. Field names and formats (RFC 3339 times, snake_case
//! enums) are the contract's; the model's types (key, TLS parameters, mTLS policy,
//! findings, probe status) are contracts of their own and are used as they are.

mod certificates;
mod endpoints;
mod fleet;
mod probers;

pub use certificates::{CertificateDetail, CertificateSummary, ListedCertificate, Notification};
pub use endpoints::{Endpoint, EndpointDetail, ProbeRequested, Socket};
pub use fleet::{FleetOverview, IngestCounts, MtlsSummary};
pub use probers::{Prober, Probers, ZoneQueue};

/// RFC 3339 times, as every time in the API is written.
pub(crate) mod rfc3339 {
    pub use time::serde::rfc3339::{option, serialize};
}
