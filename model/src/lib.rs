//! Plain domain types shared by every certfleet crate.
//!
//! Nothing here does I/O. The serde shapes of [`ProbeResult`] are the probe JSON contract
//! (see `docs/architecture.md`): fields may be added, never renamed or removed.

mod bounded;
pub mod names;
pub mod osquery;
mod probe;
pub mod probe_link;
mod redact;
mod report;
mod report_probes;
pub mod schedule;
pub mod text;

pub use osquery::{Listener, OsqueryHost, OsqueryUpdate};
pub use probe::{
    CertificateInfo, Finding, KeyInfo, MtlsEnforcement, MtlsPolicy, ProbeResult, ProbeStatus,
    TlsParameters,
};
pub use redact::redact_url;
pub use report::{
    AgentInfo, AgentReport, HostInfo, Protocol, ReportError, ReportLimits, SocketInfo, SocketScope,
};
pub use report_probes::{CheckedProbes, ProbedSocket, MAX_PROBES, MAX_PROBE_CHAIN};
