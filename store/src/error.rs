//! The store's error: a few kinds the callers act on, with the detail kept as the source.

/// A failure of a [`Store`](crate::Store) call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist (a certificate, an endpoint, ...).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `certificate`.
        what: &'static str,
    },
    /// The database could not be reached or refused work for now (connection refused or
    /// lost, pool exhausted, server shutting down). Worth retrying; the web layer answers
    /// `503`.
    /// The cause is in the message (logs and `503` bodies show only the message), not
    /// also a `source()`, so a printed chain says it once.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// An argument was refused before any write; `field` names it.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The bad field, e.g. `sockets[3].port` or `database.url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A value read from the database that the store cannot use (a negative count, a
    /// port out of range, a time out of range): the data is bad, not zeroed.
    #[error("bad value in column {column}: {message}")]
    BadRow {
        /// The column read, e.g. `port`.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// Anything else: a bug, a constraint violation, data the store cannot decode.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True for [`Error::Unavailable`]: the caller should retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_row(column: impl Into<String>, message: impl Into<String>) -> Self {
        Error::BadRow {
            column: column.into(),
            message: message.into(),
        }
    }

    pub(crate) fn other(message: impl Into<String>) -> Self {
        Error::Other(message.into().into())
    }
}

/// A serial or host name the model's rules refuse (`certfleet_model::names`).
impl From<certfleet_model::names::InvalidInput> for Error {
    fn from(error: certfleet_model::names::InvalidInput) -> Self {
        Error::invalid(error.field, error.reason)
    }
}

/// The one place where database errors are sorted into kinds.
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Error::NotFound { what: "row" },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Error::Unavailable(error),
            sqlx::Error::Database(database) if is_transient(database.as_ref()) => {
                Error::Unavailable(error)
            }
            _ => Error::Other(Box::new(error)),
        }
    }
}

impl From<certfleet_model::ReportError> for Error {
    fn from(error: certfleet_model::ReportError) -> Self {
        Error::Invalid {
            field: error.field,
            message: error.message,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::Other(Box::new(error))
    }
}

/// Database errors that mean "not now" rather than "never".
///
/// PostgreSQL: connection exceptions (class 08), serialization failures and deadlocks
/// (40001, 40P01: the transaction was rolled back and may simply be run again), too many
/// connections (53300), and the server shutting down or starting up (57P01-57P03).
/// SQLite: `SQLITE_BUSY` and `SQLITE_LOCKED` (primary codes 5 and 6, whatever the
/// extended code), which outlived the busy timeout.
fn is_transient(database: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(postgres) = database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = postgres.code();
        return code.starts_with("08")
            || matches!(
                code,
                "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
            );
    }
    if database
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        let code = database.code().and_then(|code| code.parse::<i32>().ok());
        return code.is_some_and(|code| matches!(code & 0xff, 5 | 6));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rows_are_not_found_and_pool_trouble_is_unavailable() {
        assert!(Error::from(sqlx::Error::RowNotFound).is_not_found());
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(Error::from(sqlx::Error::PoolClosed).is_unavailable());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(Error::from(sqlx::Error::Io(refused)).is_unavailable());
        assert!(!Error::from(sqlx::Error::ColumnNotFound("x".into())).is_unavailable());
    }

    #[test]
    fn an_unavailable_database_says_why_once() {
        let error = Error::from(sqlx::Error::PoolTimedOut);
        assert!(std::error::Error::source(&error).is_none());
        let message = error.to_string();
        assert!(message.starts_with("database unavailable: "), "{message}");
        let cause = sqlx::Error::PoolTimedOut.to_string();
        assert_eq!(message.matches(&cause).count(), 1, "{message}");
    }
}
