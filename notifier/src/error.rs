//! The notifier's error.

/// A failure of the notifier (delivery failures of single digests are not errors: they
/// are recorded in the outbox and retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed; see [`certfleet_store::Error::is_unavailable`] for retrying. The
    /// store's own message ("database unavailable: ...") says what failed.
    #[error(transparent)]
    Store(#[from] certfleet_store::Error),
    /// A setting is unusable; `setting` names it (`notify.smtp_url`, `owners.rules[2]`).
    #[error("invalid {setting}: {message}")]
    Setting {
        /// The setting's name.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// A message could not be delivered (only from [`Notifier::send_test`](crate::Notifier::send_test)).
    /// The cause is in the message, not also a `source()`.
    #[error("delivery failed: {0}")]
    Delivery(crate::transport::DeliveryError),
}

/// Not thiserror's `#[from]`, which would make the delivery error a `source()` too.
impl From<crate::transport::DeliveryError> for Error {
    fn from(error: crate::transport::DeliveryError) -> Self {
        Error::Delivery(error)
    }
}

impl Error {
    /// True when the store is unreachable for now and the run is worth retrying.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Store(error) if error.is_unavailable())
    }

    pub(crate) fn setting(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Setting {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// The notifier's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
