//! What every handler can reach.

use std::sync::Arc;

use certfleet_model::ReportLimits;
use certfleet_store::Store;

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingest: IngestLimits,
    /// When set, reads need this bearer token (`server.read_token`).
    pub read_token: Option<String>,
}

/// Size limits of `POST /api/v1/reports`.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Bytes of the request body as sent (compressed or not).
    pub max_body: usize,
    /// Bytes of the body after gzip decompression (a gzip bomb stops here).
    pub max_decompressed: usize,
    /// Per-field limits of the report itself (sockets per report, string sizes...).
    pub report: ReportLimits,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body: 8 * 1024 * 1024,
            max_decompressed: 32 * 1024 * 1024,
            report: ReportLimits::default(),
        }
    }
}
