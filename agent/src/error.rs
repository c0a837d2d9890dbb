//! The agent's errors, with the predicates delivery decides by.
//!
//! Each message says its cause itself (logs show only the message), so no variant also
//! hands the cause on as `source()`: a printed chain says every part once.

use std::path::PathBuf;

/// Why a collection, a configuration or a delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The /proc root could not be listed: nothing can be collected.
    #[error("cannot read {path}: {error}")]
    Proc {
        /// The /proc root.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The configuration is invalid; `key` names the setting.
    #[error("invalid agent configuration: {key}: {message}")]
    Config {
        /// The setting, e.g. `agent.interval` or `CERTFLEET_AGENT__TAGS`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file the configuration names could not be read.
    #[error("cannot read {path}: {error}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The report failed the contract's own validation (a bug: the agent sanitises what it
    /// collects).
    #[error("the collected report is invalid: {0}")]
    InvalidReport(certfleet_model::ReportError),
    /// Encoding the report (JSON, gzip) failed.
    #[error("cannot encode the report: {0}")]
    Encode(String),
    /// The spool directory could not be used.
    #[error("spool {path}: {error}")]
    Spool {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The server could not be reached, or the exchange broke off.
    #[error("cannot reach {server}: {reason}")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// What went wrong (connect, TLS, timeout, reset).
        reason: String,
    },
    /// The server answered with an error status.
    #[error("the server answered {status}: {body}")]
    Rejected {
        /// HTTP status code.
        status: u16,
        /// The start of the answer's body (the server's JSON error).
        body: String,
    },
    /// Writing the report to standard output failed.
    #[error("cannot print the report: {0}")]
    Print(std::io::Error),
}

/// Not thiserror's `#[from]`, which would make the report error a `source()` too.
impl From<certfleet_model::ReportError> for Error {
    fn from(error: certfleet_model::ReportError) -> Self {
        Error::InvalidReport(error)
    }
}

impl Error {
    /// Worth another attempt soon: the network, timeouts, `408`, `429` and `5xx`.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Rejected { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }

    /// The report should be kept for a later attempt: transient failures, and `401`/`403`
    /// (the token is wrong or revoked; the report is still good once it is fixed).
    pub fn keeps_report(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                Error::Rejected {
                    status: 401 | 403,
                    ..
                }
            )
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> Error {
        Error::Rejected {
            status,
            body: String::new(),
        }
    }

    #[test]
    fn statuses_are_sorted_into_retry_keep_and_drop() {
        for status in [408, 429, 500, 502, 503] {
            assert!(rejected(status).is_transient() && rejected(status).keeps_report());
        }
        for status in [401, 403] {
            assert!(!rejected(status).is_transient() && rejected(status).keeps_report());
        }
        for status in [400, 404, 413, 415] {
            assert!(!rejected(status).keeps_report(), "{status}");
        }
        let down = Error::Unreachable {
            server: "x:1".into(),
            reason: "refused".into(),
        };
        assert!(down.is_transient());
    }

    #[test]
    fn a_printed_chain_says_the_cause_once() {
        let error = Error::ReadFile {
            path: "/etc/certfleet/token".into(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(std::error::Error::source(&error).is_none());
        assert_eq!(
            error.to_string(),
            "cannot read /etc/certfleet/token: entity not found"
        );
        let invalid = Error::from(certfleet_model::ReportError {
            field: "host.hostname".into(),
            message: "empty".into(),
        });
        assert!(std::error::Error::source(&invalid).is_none());
    }
}
