//! The report of one pass, in the contract's shape, and its wire forms (JSON for
//! `--print`, gzip-compressed JSON for the server). The sockets are written straight from
//! the compact [`Collection`], never held as a whole `AgentReport`.

use std::io::Write;
use std::path::Path;

use certfleet_model::{AgentInfo, AgentReport, HostInfo, ProbeResult};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use time::OffsetDateTime;

use crate::collect::Visibility;
use crate::proc::{read_small, text, ProcFs};
use crate::sockets::{Collection, SocketsView};
use crate::{AgentConfig, Error};

/// The agent's version, as reported.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A pass and the host it ran on: everything a report holds.
#[derive(Debug, Clone)]
pub struct Collected {
    /// When the pass ran (whole seconds).
    pub collected_at: OffsetDateTime,
    /// The host's identity and tags.
    pub host: HostInfo,
    /// The sockets, and what the pass could not see.
    pub collection: Collection,
    /// The agent's own probes of its listeners (`agent.probe_local`); empty when off.
    pub probes: Vec<ProbeResult>,
}

/// The JSON object sent: the contract's fields, plus `visibility`, an extension the
/// service ignores today.
#[derive(Serialize)]
struct Wire<'a> {
    agent: AgentInfo,
    #[serde(with = "time::serde::rfc3339")]
    collected_at: OffsetDateTime,
    host: &'a HostInfo,
    sockets: SocketsView<'a>,
    #[serde(skip_serializing_if = "<[ProbeResult]>::is_empty")]
    probes: &'a [ProbeResult],
    visibility: &'a Visibility,
}

impl Collected {
    /// Builds the report of a pass: host identity from the configuration and the host.
    pub fn new(config: &AgentConfig, mut collection: Collection) -> Collected {
        let proc = ProcFs::new(&config.proc_root);
        let now = OffsetDateTime::now_utc();
        let host = HostInfo {
            hostname: hostname(config, &proc),
            machine_id: machine_id(&config.machine_id_file),
            namespace_addresses: collection.namespace_addresses(),
            addresses: std::mem::take(&mut collection.host_addresses),
            tags: config.tags.clone(),
        };
        Collected {
            collected_at: now.replace_nanosecond(0).unwrap_or(now),
            host,
            collection,
            probes: Vec::new(),
        }
    }

    /// The whole report as the contract's type (for tests and tools; the wire forms do
    /// not build it).
    pub fn report(&self) -> AgentReport {
        AgentReport {
            agent: agent_info(),
            collected_at: self.collected_at,
            host: self.host.clone(),
            sockets: self.collection.sockets().collect(),
            probes: self.probes.clone(),
        }
    }

    /// Checks the host part against the contract's limits; the sockets are valid by
    /// construction (sanitised names, ports above 0, bounded counts).
    pub fn validate(&self) -> Result<(), Error> {
        let host_only = AgentReport {
            agent: agent_info(),
            collected_at: self.collected_at,
            host: self.host.clone(),
            sockets: Vec::new(),
            probes: Vec::new(),
        };
        Ok(host_only.validate()?)
    }

    fn wire(&self) -> Wire<'_> {
        Wire {
            agent: agent_info(),
            collected_at: self.collected_at,
            host: &self.host,
            sockets: self.collection.serialize_sockets(),
            probes: &self.probes,
            visibility: &self.collection.visibility,
        }
    }

    /// Pretty JSON, for operators.
    pub fn write_json(&self, out: impl Write) -> Result<(), Error> {
        serde_json::to_writer_pretty(out, &self.wire())
            .map_err(|error| Error::Encode(error.to_string()))
    }

    /// Gzip-compressed compact JSON, the body of `POST /api/v1/reports`, streamed into
    /// the compressor.
    pub fn gzip(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        serde_json::to_writer(&mut encoder, &self.wire())
            .map_err(|error| Error::Encode(error.to_string()))?;
        encoder
            .finish()
            .map_err(|error| Error::Encode(error.to_string()))
    }
}

fn agent_info() -> AgentInfo {
    AgentInfo {
        version: VERSION.to_owned(),
    }
}

/// The configured host name, or the kernel's, made safe to report.
/// Who this host is, as its reports and its enrollment name it.
pub struct Identity {
    pub machine_id: String,
    pub hostname: String,
}

impl Collected {
    /// The host's machine id and name, as a report carries them.
    pub fn identity(config: &AgentConfig) -> Identity {
        let proc = ProcFs::new(&config.proc_root);
        Identity {
            machine_id: machine_id(&config.machine_id_file),
            hostname: hostname(config, &proc),
        }
    }
}

fn hostname(config: &AgentConfig, proc: &ProcFs) -> String {
    let configured = text::process_name(config.hostname.as_bytes());
    configured
        .or_else(|| proc.hostname())
        .map(|name| name.chars().take(253).collect())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The machine id (`/etc/machine-id`: 32 hex digits), or empty when there is none.
fn machine_id(path: &Path) -> String {
    let Ok(bytes) = read_small(path) else {
        return String::new();
    };
    let id = String::from_utf8_lossy(&bytes);
    let id = id.lines().next().unwrap_or_default().trim();
    let plausible = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
    if plausible {
        id.to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_the_contract_plus_visibility() {
        let config = AgentConfig {
            hostname: "web-1".into(),
            machine_id_file: "/nonexistent/machine-id".into(),
            ..AgentConfig::default()
        };
        let collection = Collection {
            host_addresses: vec!["10.0.0.5".parse().expect("literal")],
            ..Collection::default()
        };
        let collected = Collected::new(&config, collection);
        let mut json = Vec::new();
        collected.write_json(&mut json).expect("encode");
        let back: AgentReport = serde_json::from_slice(&json).expect("the contract parses it");
        assert_eq!(back, collected.report());
        assert_eq!(back.validate(), Ok(()));
        assert_eq!(back.host.hostname, "web-1");
        assert_eq!(back.host.machine_id, "");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert!(value["visibility"]["processes"].is_u64());
        let gzip = collected.gzip().expect("gzip");
        assert_eq!(&gzip[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn machine_ids_are_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("machine-id");
        std::fs::write(&path, "5f1c0a2b3c4d5e6f708192a3b4c5d6e7\n").expect("write");
        assert_eq!(machine_id(&path), "5f1c0a2b3c4d5e6f708192a3b4c5d6e7");
        std::fs::write(&path, "evil\u{1b}[0m\n").expect("write");
        assert_eq!(machine_id(&path), "");
    }
}
