//! The state kept of enrolled osquery nodes (`osquery_hosts`): one JSON document per node,
//! merged in one transaction by both backends.

use certfleet_model::{OsqueryHost, OsqueryUpdate};

use crate::error::{Error, Result};

/// The stored document read back (`None`: a new node), with the update merged in.
pub(crate) fn merged(stored: Option<&str>, update: &OsqueryUpdate) -> Result<OsqueryHost> {
    let mut host = match stored {
        Some(text) => serde_json::from_str::<OsqueryHost>(text)
            .map_err(|error| Error::other(format!("osquery_hosts.state: {error}")))?,
        None => OsqueryHost::default(),
    };
    host.apply(update);
    Ok(host)
}

/// The document as stored.
pub(crate) fn encoded(host: &OsqueryHost) -> Result<String> {
    serde_json::to_string(host)
        .map_err(|error| Error::other(format!("osquery_hosts.state: {error}")))
}

/// The host key must not be empty.
pub(crate) fn check_key(host_key: &str) -> Result<()> {
    if host_key.trim().is_empty() {
        return Err(Error::invalid("host_key", "must not be empty"));
    }
    Ok(())
}
