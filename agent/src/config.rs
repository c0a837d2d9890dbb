//! The agent's settings: the `[agent]` section of a TOML file, overridden by
//! `CERTFLEET_AGENT__KEY` environment variables, overridden by flags (applied by the
//! caller). The file may be the service's `certfleet.toml`: its other sections are left
//! to the service, and any other top-level key is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certfleet_model::ReportLimits;
use serde::Deserialize;

use crate::{Error, ProbeLocal};

/// Prefix of the environment variables that override `[agent]` keys.
pub const ENV_PREFIX: &str = "CERTFLEET_AGENT__";
/// Sections of `certfleet.toml` that belong to the service.
const SERVICE_SECTIONS: [&str; 9] = [
    "database",
    "server",
    "probe",
    "notify",
    "osquery",
    "owners",
    "retention",
    "log",
    "events",
];

/// Every setting of the agent; each has a default.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Base URL of the certfleet service, `http://` or `https://`; empty: nowhere to send
    /// (only `--print` works).
    pub server: String,
    /// The agent token (`certfleet token create`). Prefer `token_file` or the environment:
    /// a `--token` flag is visible to every local user in the process list.
    pub token: String,
    /// A file holding the token (read when `token` is empty).
    pub token_file: Option<PathBuf>,
    /// The fleet's shared enroll secret (`server.agent_enroll_secret`): without a token,
    /// the agent exchanges it once for its own credential, bound to this host.
    pub enroll_secret: String,
    /// A file holding the enroll secret (read when `enroll_secret` is empty).
    pub enroll_secret_file: Option<PathBuf>,
    /// Where the enrolled credential is kept (mode 0600).
    pub credential_file: PathBuf,
    /// Time between two collections.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest random delay before the first collection, so that a fleet restarted at once
    /// does not report in the same second. Later intervals vary by ±10 %.
    #[serde(with = "humantime_serde")]
    pub splay: Duration,
    /// Deadline of one HTTP exchange (connect, TLS, send, answer).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per report and cycle before it goes to the spool.
    pub retry_attempts: u32,
    /// Back-off before the second attempt; doubles each time, with full jitter.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest back-off.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// Extra trust roots (PEM) for an `https://` server, e.g. the internal PKI's root.
    pub ca_file: Option<PathBuf>,
    /// Where undelivered reports wait; empty: no spool.
    pub spool_dir: PathBuf,
    /// Reports kept in the spool at most (the oldest go first).
    pub spool_max_reports: usize,
    /// Bytes kept in the spool at most (compressed reports).
    pub spool_max_bytes: u64,
    /// The /proc to read (`/host/proc` for an agent in a container with the host's /proc).
    pub proc_root: PathBuf,
    /// Docker's root directory, where containers' names and labels are read
    /// (`containers/<id>/config.v2.json`); empty: not read.
    pub docker_root: PathBuf,
    /// containerd's state directory, where the OCI specs of running containers are read
    /// (`io.containerd.runtime.v2.task/<namespace>/<id>/config.json`); empty: not read.
    pub containerd_root: PathBuf,
    /// The machine id file (`/etc/machine-id`).
    pub machine_id_file: PathBuf,
    /// The host name to report; empty: the kernel's.
    pub hostname: String,
    /// Workload tags: `app`, `env` and `owner` decide who is told about a certificate.
    pub tags: BTreeMap<String, String>,
    /// Probe here what the centre cannot reach: `true`, the listeners bound to loopback
    /// only; `"all"`, every listener of the host and its containers (the centre then
    /// probes none of them); `false`, none. Results travel in the report (docs/agent.md).
    pub probe_local: ProbeLocal,
    /// Probes in flight at once when probing locally.
    pub probe_concurrency: usize,
    /// Deadline of one local probe (connect, STARTTLS, handshake, verdict).
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            server: String::new(),
            token: String::new(),
            token_file: None,
            enroll_secret: String::new(),
            enroll_secret_file: None,
            credential_file: PathBuf::from("/var/lib/certfleet-agent/credential"),
            interval: Duration::from_secs(3600),
            splay: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            retry_attempts: 4,
            retry_backoff: Duration::from_secs(2),
            retry_backoff_max: Duration::from_secs(60),
            ca_file: None,
            spool_dir: PathBuf::from("/var/lib/certfleet-agent/spool"),
            spool_max_reports: 48,
            spool_max_bytes: 8 * 1024 * 1024,
            proc_root: PathBuf::from("/proc"),
            docker_root: PathBuf::from("/var/lib/docker"),
            containerd_root: PathBuf::from("/run/containerd"),
            machine_id_file: PathBuf::from("/etc/machine-id"),
            hostname: String::new(),
            tags: BTreeMap::new(),
            probe_local: ProbeLocal::Off,
            probe_concurrency: 2,
            probe_timeout: Duration::from_secs(5),
        }
    }
}

/// Hand-written so that the token never reaches a log.
impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() { "" } else { "***" };
        f.debug_struct("AgentConfig")
            .field("server", &self.server)
            .field("token", &token)
            .field("token_file", &self.token_file)
            .field(
                "enroll_secret",
                &if self.enroll_secret.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("credential_file", &self.credential_file)
            .field("interval", &self.interval)
            .field("spool_dir", &self.spool_dir)
            .field("proc_root", &self.proc_root)
            .field("docker_root", &self.docker_root)
            .field("containerd_root", &self.containerd_root)
            .field("tags", &self.tags)
            .field("probe_local", &self.probe_local)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// Reads `path` (defaults only without one) and applies `CERTFLEET_AGENT__*` variables.
    pub fn load(path: Option<&Path>) -> Result<AgentConfig, Error> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                path: path.to_owned(),
                error: source,
            })?,
            None => String::new(),
        };
        AgentConfig::from_parts(&text, std::env::vars())
    }

    /// Parses TOML text, then applies the `CERTFLEET_AGENT__KEY=value` variables of `env`.
    /// `CERTFLEET_AGENT__TAGS` takes `app=billing,env=prod`; the tags it names replace
    /// the file's tags of the same name.
    pub fn from_parts(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<AgentConfig, Error> {
        let mut document: toml::Table =
            toml::from_str(text).map_err(|error| Error::config("config file", error.message()))?;
        let mut agent = match document.remove("agent") {
            Some(toml::Value::Table(table)) => table,
            Some(_) => return Err(Error::config("agent", "must be a section")),
            None => toml::Table::new(),
        };
        if let Some(key) = document
            .keys()
            .find(|k| !SERVICE_SECTIONS.contains(&k.as_str()))
        {
            return Err(Error::config(key.as_str(), "unknown key"));
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if key == "tags" {
                let tags = agent
                    .entry("tags")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(tags) = tags.as_table_mut() else {
                    return Err(Error::config("agent.tags", "must be a table"));
                };
                for (tag, tag_value) in parse_tags(&value).map_err(|m| Error::config(&name, m))? {
                    tags.insert(tag, toml::Value::String(tag_value));
                }
            } else {
                agent.insert(key, env_value(&value));
            }
        }
        // Through text again, so that an error shows the offending line.
        let text =
            toml::to_string(&agent).map_err(|error| Error::config("agent", error.to_string()))?;
        let config: AgentConfig =
            toml::from_str(&text).map_err(|error| Error::config("agent", error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: tags the server would refuse, impossible durations.
    pub fn validate(&self) -> Result<(), Error> {
        let limits = ReportLimits::default();
        if self.tags.len() > limits.max_tags {
            return Err(Error::config("agent.tags", "too many tags"));
        }
        for (key, value) in &self.tags {
            let field = format!("agent.tags.{key}");
            if key.trim().is_empty() {
                return Err(Error::config(field, "tag names must not be empty"));
            }
            if [key, value].iter().any(|s| s.len() > limits.max_string) {
                return Err(Error::config(field, "longer than 512 bytes"));
            }
            if [key, value].iter().any(|s| s.chars().any(char::is_control)) {
                return Err(Error::config(field, "contains control characters"));
            }
        }
        if self.interval < Duration::from_secs(1) {
            return Err(Error::config("agent.interval", "must be at least 1s"));
        }
        if self.retry_attempts == 0 {
            return Err(Error::config("agent.retry_attempts", "must be at least 1"));
        }
        if !(1..=64).contains(&self.probe_concurrency) {
            return Err(Error::config("agent.probe_concurrency", "must be 1 to 64"));
        }
        if self.probe_timeout < Duration::from_millis(100) {
            return Err(Error::config(
                "agent.probe_timeout",
                "must be at least 100ms",
            ));
        }
        Ok(())
    }

    /// The enroll secret: `enroll_secret`, or the first line of `enroll_secret_file`.
    pub fn resolved_enroll_secret(&self) -> Result<String, Error> {
        value_or_file(&self.enroll_secret, self.enroll_secret_file.as_deref())
    }

    /// The token: `token`, or the first line of `token_file`.
    pub fn resolved_token(&self) -> Result<String, Error> {
        value_or_file(&self.token, self.token_file.as_deref())
    }
}

/// A secret given in the configuration, or else the first line of the file it names.
fn value_or_file(value: &str, file: Option<&Path>) -> Result<String, Error> {
    if !value.trim().is_empty() {
        return Ok(value.trim().to_owned());
    }
    let Some(path) = file else {
        return Ok(String::new());
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_owned(),
        error: source,
    })?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `app=billing,env=prod,owner=team@example.com` as tags. Values may hold `=`, not `,`.
pub fn parse_tags(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut tags = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("`{pair}` is not key=value"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{pair}` has no tag name"));
        }
        tags.insert(key.to_owned(), value.trim().to_owned());
    }
    Ok(tags)
}

/// An environment value is read as TOML when it is one (`42`, `true`), as a string
/// otherwise: the rule the service's own `CERTFLEET_SECTION__KEY` variables follow.
fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../agent.example.toml");
        let config = AgentConfig::from_parts(text, no_env()).expect("example parses");
        assert_eq!(config.tags.get("app").map(String::as_str), Some("billing"));
    }

    #[test]
    fn environment_overrides_the_file_and_merges_tags() {
        let text = "[agent]\nserver = \"http://a\"\ninterval = \"2h\"\n[agent.tags]\napp = \"x\"\n\
                    env = \"dev\"\n[database]\nurl = \"sqlite://x\"\n";
        let vars = env(&[
            ("CERTFLEET_AGENT__SERVER", "https://b:8443"),
            ("CERTFLEET_AGENT__SPOOL_MAX_REPORTS", "3"),
            ("CERTFLEET_AGENT__TAGS", "env=prod, owner=team@example.com"),
            ("CERTFLEET_DATABASE__URL", "ignored by the agent"),
        ]);
        let config = AgentConfig::from_parts(text, vars).expect("valid");
        assert_eq!(config.server, "https://b:8443");
        assert_eq!(config.interval, Duration::from_secs(7200));
        assert_eq!(config.spool_max_reports, 3);
        let tags: Vec<(&str, &str)> = config
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tags,
            vec![("app", "x"), ("env", "prod"), ("owner", "team@example.com")]
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            ("[agent]\nservr = \"x\"\n", "servr"),
            ("[agnet]\n", "agnet"),
            ("[agent]\ninterval = \"soon\"\n", "interval"),
            ("[agent]\ninterval = \"10ms\"\n", "agent.interval"),
            ("[agent.tags]\n\"\" = \"x\"\n", "agent.tags."),
            ("[agent.tags]\napp = \"a\\u0007b\"\n", "agent.tags.app"),
        ];
        for (text, key) in cases {
            let error = AgentConfig::from_parts(text, no_env()).expect_err(text);
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
        let error = AgentConfig::from_parts("", env(&[("CERTFLEET_AGENT__TAGS", "app")]))
            .expect_err("not key=value");
        assert!(
            error.to_string().contains("CERTFLEET_AGENT__TAGS"),
            "{error}"
        );
    }

    #[test]
    fn the_token_comes_from_its_file_and_never_reaches_debug() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        let config = AgentConfig {
            token_file: Some(path),
            ..AgentConfig::default()
        };
        assert_eq!(config.resolved_token().expect("read"), "s3cret");
        let config = AgentConfig {
            token: "s3cret".into(),
            ..AgentConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
