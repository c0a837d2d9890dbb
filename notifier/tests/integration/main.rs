//! The notifier against real components: SQLite and PostgreSQL stores, and a real SMTP
//! server (aiosmtpd writing a Maildir) or the `.eml` file transport. Time is a manual
//! clock moved by the tests; nothing waits on wall-clock time.

mod fleet;
mod harness;
mod smtpd;

mod concurrency;
mod digests;
mod files;
mod outage;
mod rotation;
mod thresholds;
