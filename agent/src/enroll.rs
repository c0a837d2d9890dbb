//! Enrollment: a host without a token exchanges the fleet's shared enroll secret
//! (`agent.enroll_secret`) for its own credential, bound to its machine id, once
//! (`POST /api/v1/agents/enroll`). The credential is kept in `agent.credential_file`
//! (mode 0600) and used from then on; the secret itself is never stored by the service.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;

use crate::error::Error;
use crate::http::{Bearer, Client};

const ENROLL_PATH: &str = "/api/v1/agents/enroll";

#[derive(Deserialize)]
struct Enrolled {
    token: String,
}

/// The credential in `credential_file`, or a new one from the server, written there.
pub async fn credential(
    client: &Client,
    secret: &Bearer,
    credential_file: &Path,
    machine_id: &str,
    hostname: &str,
) -> Result<String, Error> {
    if let Some(token) = read_credential(credential_file)? {
        return Ok(token);
    }
    let body = serde_json::json!({"machine_id": machine_id, "hostname": hostname});
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder
        .write_all(body.to_string().as_bytes())
        .map_err(|error| Error::Encode(error.to_string()))?;
    let body = encoder
        .finish()
        .map_err(|error| Error::Encode(error.to_string()))?;
    let response = client.post_gzip_json(ENROLL_PATH, secret, &body).await?;
    let enrolled: Enrolled = serde_json::from_slice(&response.body).map_err(|error| {
        Error::config(
            "agent.enroll_secret",
            format!("unexpected enroll answer: {error}"),
        )
    })?;
    let token = enrolled.token.trim().to_owned();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::config(
            "agent.enroll_secret",
            "the server sent no usable token",
        ));
    }
    write_credential(credential_file, &token)?;
    tracing::info!(file = %credential_file.display(), "enrolled; credential saved");
    Ok(token)
}

fn read_credential(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned()).filter(|token| !token.is_empty())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadFile {
            path: path.to_owned(),
            error: source,
        }),
    }
}

/// Writes the credential readable by the agent alone, atomically (a crash leaves the old
/// file or none).
fn write_credential(path: &Path, token: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| Error::Spool {
        path: path.to_owned(),
        error: source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(failed)?;
    writeln!(file, "{token}")
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}
