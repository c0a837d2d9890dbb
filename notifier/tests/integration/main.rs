//! The notifier against real components: SQLite and PostgreSQL stores, and a real SMTP
//! server (aiosmtpd writing a Maildir) or the `.eml` file transport, and real HTTP
//! receivers (axum on 127.0.0.1) for webhooks. Time is a manual
//! clock moved by the tests; nothing waits on wall-clock time.

mod fleet;
mod harness;
mod receiver;
mod smtpd;

mod concurrency;
mod db_restart;
mod digests;
mod files;
mod outage;
mod rotation;
mod slow_smtp;
mod thresholds;
mod webhooks;

/// A private PostgreSQL server, shared with the system tests (`tests/system/serve/`).
#[path = "../../../tests/system/serve/private_pg.rs"]
#[allow(dead_code)]
mod private_pg;

/// `private_pg.rs` takes its port from `crate::openssl_server::free_port` (the system
/// tests keep it there); here it is the SMTP tests' free port.
mod openssl_server {
    pub use crate::smtpd::free_port;
}
