//! Certificate and chain analysis: contract fields and findings. Pure functions of the
//! served chain, the SNI name, the clock and the trust store.

mod certificate;
mod findings;
mod names;
mod signature;
mod trust;

pub use certificate::{normalized_serial, ServedCertificate};
pub use findings::{findings, Context};
pub use names::{dns_name_matches, rfc4514_from_der};
pub use trust::{TrustError, TrustStore};
