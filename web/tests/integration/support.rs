//! What every test uses: a served router over a seeded store, and an HTTP client.

pub mod certs;
pub mod fleet;
pub mod harness;
pub mod http;

pub use harness::TestApp;
