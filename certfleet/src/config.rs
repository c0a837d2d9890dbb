//! `certfleet.toml`, overridable by `CERTFLEET_SECTION__KEY` environment variables.
//! Unknown keys are an error that names the key.

use certfleet_model::redact_url;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use ipnet::IpNet;
use serde::Deserialize;

pub use certfleet_service::static_targets::StaticTarget;

/// The whole configuration. Every section and key has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub probe: ProbeConfig,
    pub notify: NotifyConfig,
    pub osquery: OsqueryConfig,
    pub owners: OwnersConfig,
    pub retention: RetentionConfig,
    pub log: LogConfig,
    pub events: crate::events_config::EventsConfig,
    /// Network zones (`[[zones]]`): which probers probe which endpoints
    /// (docs/scale-out.md, "Zones").
    pub zones: Vec<certfleet_store::Zone>,
    /// The host agent's own section (`certfleet agent` reads it; see docs/agent.md). The
    /// service accepts it so that one file and one environment can serve both.
    #[serde(rename = "agent")]
    pub _agent: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://certfleet.db` (embedded, the default) or `postgres://user@host/db`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// SQLite only: `full` (each commit on disk before it is answered) or `normal`
    /// (faster; a power loss may lose the last commits).
    pub sqlite_synchronous: certfleet_store::SqliteSynchronous,
    /// PostgreSQL only: a streaming replica of `url` for the API's reads and `export`
    /// (empty: every read goes to `url`). Writes and leases always go to `url`.
    pub read_url: String,
    /// Reads go to `url` while the replica is further behind than this, or down.
    #[serde(with = "humantime_serde")]
    pub read_max_lag: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://certfleet.db".into(),
            max_connections: 10,
            sqlite_synchronous: certfleet_store::SqliteSynchronous::Full,
            read_url: String::new(),
            read_max_lag: Duration::from_secs(30),
        }
    }
}

impl DatabaseConfig {
    /// `read_url`, when set, must name PostgreSQL, and so must `url` (SQLite has no
    /// replicas); the lag bound must be more than zero.
    fn check_replica(&self) -> Result<(), String> {
        if self.read_url.is_empty() {
            return Ok(());
        }
        certfleet_store::check_read_url(&self.url, &self.read_url).map_err(|e| e.to_string())?;
        if self.read_max_lag.is_zero() {
            return Err("database.read_max_lag must be more than zero".into());
        }
        Ok(())
    }
}

/// Hand-written so that a password in the URL never reaches a log.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("read_url", &redact_url(&self.read_url))
            .field("read_max_lag", &self.read_max_lag)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// When set, reads (web and API) need this bearer token.
    pub read_token: String,
    /// When set, agents may enroll with it for a credential bound to their host.
    pub agent_enroll_secret: String,
    /// Used in links inside emails.
    pub base_url: String,
    /// `/metrics` has one expiry series per leaf in use that expires within this window.
    #[serde(with = "humantime_serde")]
    pub metrics_expiry_window: Duration,
    /// Ingest requests (agent reports, osquery enroll and logger posts) handled at once;
    /// past it, `503` with `Retry-After`. At least 1.
    pub ingest_concurrency: usize,
    /// Probe now: at most one request per endpoint within this window (held in the
    /// database, so across API replicas); another gets `429` with `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub probe_now_window: Duration,
    /// The secret that signs the "renewed? check again" links in digests (at least 32
    /// bytes). Empty (and no `link_secret_file`): digests carry no such link and
    /// `/probe-link` answers 404. Every API replica needs the same secret.
    pub link_secret: String,
    /// A file holding the link secret (surrounding whitespace trimmed), instead of
    /// `link_secret` in the config.
    pub link_secret_file: Option<PathBuf>,
    /// How long a signed link stays valid after the digest is rendered.
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
}

impl ServerConfig {
    /// The key of the signed links: `link_secret`, or the contents of `link_secret_file`;
    /// `None` when neither is set.
    pub fn link_key(&self) -> anyhow::Result<Option<certfleet_model::probe_link::LinkKey>> {
        let secret = match &self.link_secret_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read server.link_secret_file {}", path.display()))?
                .trim()
                .to_owned(),
            None => self.link_secret.clone(),
        };
        if secret.is_empty() {
            return Ok(None);
        }
        let key = certfleet_model::probe_link::LinkKey::new(secret.as_bytes())
            .context("invalid server.link_secret")?;
        Ok(Some(key))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            read_token: String::new(),
            agent_enroll_secret: String::new(),
            base_url: "http://127.0.0.1:8080".into(),
            metrics_expiry_window: Duration::from_secs(14 * 24 * 3600),
            ingest_concurrency: 16,
            probe_now_window: Duration::from_secs(60),
            link_secret: String::new(),
            link_secret_file: None,
            link_lifetime: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field(
                "read_token",
                &if self.read_token.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field(
                "agent_enroll_secret",
                &if self.agent_enroll_secret.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("base_url", &self.base_url)
            .field("metrics_expiry_window", &self.metrics_expiry_window)
            .field("ingest_concurrency", &self.ingest_concurrency)
            .field("probe_now_window", &self.probe_now_window)
            .field(
                "link_secret",
                &if self.link_secret.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("link_secret_file", &self.link_secret_file)
            .field("link_lifetime", &self.link_lifetime)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Networks the prober may connect to. Link-local and multicast are never probed.
    pub allow: Vec<IpNet>,
    /// Networks never probed, even inside `allow`.
    pub deny: Vec<IpNet>,
    /// Longest time between two probes of a healthy endpoint.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Shortest time between two probes of a healthy endpoint whose certificate is close
    /// to its end (docs/probing.md, "When endpoints are probed").
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// A healthy endpoint is probed again after this fraction of its leaf's remaining
    /// lifetime, between `min_interval` and `interval`; 0: every `interval`.
    pub lifetime_fraction: f64,
    /// Delay before probing again after a failure; doubles per failure up to `interval`.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Deadline of one probe.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Extra trust roots (PEM), e.g. the internal PKI.
    pub ca_files: Vec<PathBuf>,
    /// Probes in flight per prober process.
    pub concurrency: usize,
    /// Endpoints leased per round trip to the database.
    pub batch: u32,
    /// How long a prober holds the endpoints it leased: a crashed prober's endpoints are
    /// due again after this. Unset: four probe timeouts, at least 5 minutes. Keep it well
    /// above the time one leased batch takes to probe and record.
    #[serde(with = "humantime_serde")]
    pub lease: Option<Duration>,
    /// Probes in flight to one address, per prober process: a host with many ports (or
    /// many names) is never hammered by a round.
    pub max_per_address: usize,
    /// New connections per second, per prober process; 0: as fast as `concurrency` allows.
    pub connections_per_second: u32,
    /// Name servers (`ip:port`) for static targets' host names and PTR names; empty: the
    /// system's configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Probe each endpoint again under every name its results reveal (the workload's host
    /// name, the certificate's DNS names, the PTR name); off, only the endpoints reported
    /// or configured are probed.
    pub present_names: bool,
    /// Present each address's DNS PTR name as SNI too (not for loopback addresses, which
    /// are all `localhost`).
    pub ptr_names: bool,
    /// How often static targets' host names are resolved again.
    #[serde(with = "humantime_serde")]
    pub targets_refresh: Duration,
    /// Static targets: load balancers, appliances, anything without an agent.
    pub targets: Vec<StaticTarget>,
    /// The zones whose endpoints this prober leases; empty: every zone.
    pub zones: Vec<String>,
    /// How often this prober announces itself (name, zones, version, probe rate); it
    /// counts as live for three of these.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        let nets = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];
        ProbeConfig {
            allow: nets.iter().filter_map(|net| net.parse().ok()).collect(),
            deny: Vec::new(),
            interval: Duration::from_secs(24 * 3600),
            min_interval: Duration::from_secs(3600),
            lifetime_fraction: 0.1,
            retry_after: Duration::from_secs(600),
            timeout: Duration::from_secs(5),
            ca_files: Vec::new(),
            concurrency: 256,
            batch: 500,
            lease: None,
            max_per_address: 16,
            connections_per_second: 0,
            nameservers: Vec::new(),
            present_names: true,
            ptr_names: true,
            targets_refresh: Duration::from_secs(3600),
            targets: Vec::new(),
            zones: Vec::new(),
            heartbeat: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `smtp://host:port` or `smtps://...`; empty: .eml files in `outbox_dir`.
    pub smtp_url: String,
    pub outbox_dir: PathBuf,
    pub from: String,
    /// Days before expiry at which owners are told.
    pub thresholds: Vec<u32>,
    /// How often the scheduler looks for what is due.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub default_owner: String,
    /// Also send one digest of everything due to this address (the security team);
    /// empty: no copy.
    pub security_copy: String,
    /// Certificates whose whole lifetime is at most this many days are short-lived: they
    /// are reported only when under a third of their lifetime is left (0: no such rule).
    pub short_lived_days: u32,
    /// Before mail about an endpoint's certificate, the endpoint is probed again when its
    /// last probe is older than this: no mail about a certificate already replaced.
    #[serde(with = "humantime_serde")]
    pub confirm_within: Duration,
    /// How long a notification run waits for those confirming probes at most.
    #[serde(with = "humantime_serde")]
    pub confirm_wait: Duration,
    /// Receivers of digests over HTTP, from the same outbox as mail.
    pub webhooks: Vec<WebhookConfig>,
    /// Deadline of one webhook post (connect, TLS, request, answer).
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// Certificates listed in one email at most; more go out as further parts.
    pub max_per_email: usize,
}

/// One `[[notify.webhooks]]` entry; checked by the notifier when it is built
/// (`certfleet_notifier::Webhook::new`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names it in the outbox and the status; empty: the URL's host and a hash of the URL.
    #[serde(default)]
    pub name: Option<String>,
    /// `https://...`, or `http://` to a loopback address.
    pub url: String,
    /// The body: certfleet's JSON digest document, or a Slack message.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Owners (addresses) whose digests it gets; with `apps`, either matches. Both
    /// empty: every owner's.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Apps (`app` tags) whose certificates it is told about.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Key of the HMAC-SHA256 signature header; required by the `json` format.
    #[serde(default)]
    pub secret: String,
    /// A file holding the secret instead (its trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// Hand-written: neither the secret nor the URL (a Slack URL is a secret) reaches a log.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("owners", &self.owners)
            .field("apps", &self.apps)
            .field("secret_file", &self.secret_file)
            .finish_non_exhaustive()
    }
}

/// `format` of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// certfleet's digest document.
    #[default]
    Json,
    /// A Slack incoming-webhook message.
    Slack,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp_url: String::new(),
            outbox_dir: PathBuf::from("outbox"),
            from: "certfleet@localhost".into(),
            thresholds: vec![30, 14, 7, 3, 1],
            interval: Duration::from_secs(3600),
            default_owner: "security@example.com".into(),
            security_copy: String::new(),
            short_lived_days: 30,
            confirm_within: Duration::from_secs(3600),
            confirm_wait: Duration::from_secs(60),
            webhooks: Vec::new(),
            webhook_timeout: Duration::from_secs(30),
            max_per_email: 500,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OsqueryConfig {
    /// Empty: the osquery endpoints are off.
    pub enroll_secret: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OwnersConfig {
    /// First match wins; the workload's own owner tag comes first.
    pub rules: Vec<OwnerRule>,
}

/// Read by the notifier; parsed (and checked) here so a typo fails at start-up. Every
/// field that is set must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRule {
    /// The workload's `app` tag.
    #[serde(default)]
    pub app: Option<String>,
    /// The workload's `env` tag.
    #[serde(default)]
    pub env: Option<String>,
    /// The workload's Kubernetes namespace (its `namespace` tag, from the container's
    /// annotations or labels).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Glob (`*`, `?`) on the container's name (its `container` tag), or its id.
    #[serde(default)]
    pub container: Option<String>,
    /// Glob (`*`, `?`) on the host name or the SNI name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Network containing the endpoint's address.
    #[serde(default)]
    pub cidr: Option<IpNet>,
    pub email: String,
    /// Days before expiry for what this rule matches, instead of notify.thresholds.
    #[serde(default)]
    pub thresholds: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Endpoints not reported for this many days retire.
    pub endpoint_days: u32,
    /// How long a socket stays its host's after the host last reported it (two agent
    /// report intervals): another host's claim within it is a conflict; past it, a socket
    /// whose probes fail twice no longer serves its certificate.
    #[serde(with = "humantime_serde")]
    pub report_window: Duration,
    /// Certificates no active endpoint served for this many days are deleted; 0: kept.
    pub certificate_days: u32,
    /// Observations older than this many days are compacted to the changes; 0: kept.
    pub observation_days: u32,
    /// Endpoints retired this many days ago are deleted, then hosts silent as long that
    /// have no endpoint left; 0: kept.
    pub host_days: u32,
    /// Rows of each kind one prune batch (one transaction) deletes at most.
    pub batch: usize,
    /// Prune batches per scheduler run at most; what is left waits for the next run.
    pub batches_per_run: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            endpoint_days: 7,
            report_window: Duration::from_secs(2 * 3600),
            certificate_days: 90,
            observation_days: 365,
            host_days: 30,
            batch: certfleet_store::DEFAULT_PRUNE_BATCH,
            batches_per_run: 100,
        }
    }
}

impl RetentionConfig {
    /// What the scheduler prunes.
    pub fn policy(&self) -> certfleet_store::RetentionPolicy {
        let days = |days: u32| (days > 0).then(|| time::Duration::days(i64::from(days)));
        certfleet_store::RetentionPolicy {
            certificates: days(self.certificate_days),
            observations: days(self.observation_days),
            hosts: days(self.host_days),
            batch: self.batch,
        }
    }

    /// Checks the bounds; the error names the key.
    fn check(&self) -> Result<(), String> {
        let most = certfleet_store::MAX_PRUNE_BATCH;
        if !(1..=most).contains(&self.batch) {
            return Err(format!("retention.batch must be between 1 and {most}"));
        }
        if self.batches_per_run == 0 {
            return Err("retention.batches_per_run must be at least 1".into());
        }
        Ok(())
    }
}

/// How the service logs (main.rs reads it before the command runs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (one object per line); `--log-format` overrides.
    pub format: crate::logging::LogFormat,
}

impl Config {
    /// Loads `path` (or only defaults without one), then applies `CERTFLEET_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?,
            None => String::new(),
        };
        let origin = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "defaults".into());
        Self::from_parts(&text, std::env::vars(), &origin)
    }

    /// Parses TOML text and applies `CERTFLEET_SECTION__KEY=value` overrides.
    pub fn from_parts(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> anyhow::Result<Config> {
        let mut document: toml::Table =
            toml::from_str(text).with_context(|| format!("invalid config {origin}"))?;
        for (name, value) in env {
            let Some(key) = name.strip_prefix("CERTFLEET_") else {
                continue;
            };
            // CERTFLEET_CONFIG (the --config default) and other single-word names are not
            // overrides.
            let Some((section, field)) = key.split_once("__") else {
                continue;
            };
            let section = section.to_ascii_lowercase();
            let field = field.to_ascii_lowercase();
            let table = document
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(table) = table.as_table_mut() else {
                bail!("environment variable {name}: [{section}] is not a section");
            };
            table.insert(field, env_value(&value));
        }
        let config: Config = toml::Value::Table(document)
            .try_into()
            .with_context(|| format!("invalid config {origin}"))?;
        if config.server.probe_now_window.is_zero() {
            bail!("invalid config {origin}: server.probe_now_window must be more than zero");
        }
        if let Err(error) = config.database.check_replica() {
            bail!("invalid config {origin}: {error}");
        }
        if config.server.ingest_concurrency == 0 {
            bail!("invalid config {origin}: server.ingest_concurrency must be at least 1");
        }
        let fraction = config.probe.lifetime_fraction;
        if !(0.0..=1.0).contains(&fraction) {
            bail!("invalid config {origin}: probe.lifetime_fraction must be between 0 and 1, not {fraction}");
        }
        if let Err(error) = config.retention.check() {
            bail!("invalid config {origin}: {error}");
        }
        if let Err(error) = config.events.check() {
            bail!("invalid config {origin}: {error}");
        }
        if config.probe.heartbeat.is_zero() {
            bail!("invalid config {origin}: probe.heartbeat must be more than zero");
        }
        certfleet_store::check_zones(&config.zones)
            .with_context(|| format!("invalid config {origin}"))?;
        for (index, zone) in config.probe.zones.iter().enumerate() {
            certfleet_store::check_zone_name(&format!("probe.zones[{index}]"), zone)
                .with_context(|| format!("invalid config {origin}"))?;
        }
        for (index, target) in config.probe.targets.iter().enumerate() {
            if target.hosts.is_empty() || target.ports.is_empty() || target.ports.contains(&0) {
                bail!(
                    "invalid config {origin}: probe.targets[{index}] needs at least one host \
                     and at least one port (1-65535)"
                );
            }
        }
        Ok(config)
    }
}

/// An environment value is read as TOML when it is one (`42`, `true`, `["a", "b"]`),
/// and as a plain string otherwise.
fn env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certfleet_service::static_targets::TargetHost;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../certfleet.example.toml");
        let config = Config::from_parts(text, no_env(), "example").expect("example parses");
        assert_eq!(config.notify.thresholds, vec![30, 14, 7, 3, 1]);
        assert_eq!(config.owners.rules.len(), 1);
    }

    #[test]
    fn static_targets_are_checked_when_read() {
        let text = include_str!("../../certfleet.example.toml");
        let config = Config::from_parts(text, no_env(), "example").expect("example parses");
        let targets = &config.probe.targets;
        assert_eq!(targets.len(), 2);
        assert_eq!(
            targets[0].hosts,
            vec![
                TargetHost::Name("lb.example.internal".into()),
                TargetHost::Range("10.20.0.0/28".parse().expect("a range")),
            ]
        );
        let smtp = targets[1].starttls.map(|mode| mode.0.to_string());
        assert_eq!(smtp.as_deref(), Some("smtp"));
        for (bad, named) in [
            (
                "hosts = [\"10.0.0.0/8\"]\nports = [443]",
                "larger than 65536",
            ),
            ("hosts = [\"a b\"]\nports = [443]", "neither an address"),
            (
                "hosts = [\"x.test\"]\nports = [443]\nstarttls = \"gopher\"",
                "gopher",
            ),
            ("hosts = [\"x.test\"]\nports = []", "at least one port"),
            ("hosts = []\nports = [443]", "at least one host"),
            ("hosts = [\"x.test\"]\nports = [70000]", "70000"),
        ] {
            let text = format!("[[probe.targets]]\n{bad}\n");
            let error = Config::from_parts(&text, no_env(), "test").expect_err(bad);
            assert!(format!("{error:#}").contains(named), "{bad}: {error:#}");
        }
    }

    #[test]
    fn ingest_concurrency_is_read_and_at_least_one() {
        let config = Config::from_parts("", no_env(), "test").expect("defaults");
        assert_eq!(config.server.ingest_concurrency, 16);
        let env = vec![(
            "CERTFLEET_SERVER__INGEST_CONCURRENCY".to_owned(),
            "3".to_owned(),
        )];
        let config = Config::from_parts("", env, "test").expect("override");
        assert_eq!(config.server.ingest_concurrency, 3);
        let error = Config::from_parts("[server]\ningest_concurrency = 0\n", no_env(), "test")
            .expect_err("zero");
        assert!(
            format!("{error:#}").contains("server.ingest_concurrency"),
            "{error:#}"
        );
    }

    #[test]
    fn retention_days_become_the_policy_and_zero_keeps_forever() {
        let config = Config::from_parts("", no_env(), "test").expect("defaults");
        let policy = config.retention.policy();
        assert_eq!(policy.certificates, Some(time::Duration::days(90)));
        assert_eq!(policy.observations, Some(time::Duration::days(365)));
        assert_eq!(policy.hosts, Some(time::Duration::days(30)));
        assert_eq!(policy.batch, 1_000);
        let text = "[retention]\ncertificate_days = 0\nhost_days = 45\nbatch = 50\n";
        let policy = Config::from_parts(text, no_env(), "test")
            .expect("parses")
            .retention
            .policy();
        assert_eq!(policy.certificates, None);
        assert_eq!(policy.hosts, Some(time::Duration::days(45)));
        assert_eq!(policy.batch, 50);
        for (bad, named) in [
            ("batch = 0", "retention.batch"),
            ("batch = 100001", "retention.batch"),
            ("batches_per_run = 0", "retention.batches_per_run"),
            ("certificate_days = -1", "certificate_days"),
            ("host_days = \"30d\"", "host_days"),
        ] {
            let text = format!("[retention]\n{bad}\n");
            let error = Config::from_parts(&text, no_env(), "test").expect_err(bad);
            assert!(format!("{error:#}").contains(named), "{bad}: {error:#}");
        }
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let error = Config::from_parts("[server]\nlisten_addr = \"x\"\n", no_env(), "test")
            .expect_err("unknown key");
        assert!(format!("{error:#}").contains("listen_addr"), "{error:#}");
        let error =
            Config::from_parts("[nonsense]\n", no_env(), "test").expect_err("unknown section");
        assert!(format!("{error:#}").contains("nonsense"), "{error:#}");
    }

    #[test]
    fn agent_section_and_config_path_variable_are_accepted() {
        let env = vec![
            (
                "CERTFLEET_CONFIG".to_owned(),
                "/etc/certfleet.toml".to_owned(),
            ),
            ("CERTFLEET_AGENT__TAGS".to_owned(), "app=x".to_owned()),
        ];
        let config = Config::from_parts("[agent]\nserver = \"http://x\"\n", env, "t");
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn environment_overrides_file() {
        let env = vec![
            (
                "CERTFLEET_DATABASE__URL".to_owned(),
                "postgres://u:pw@db/x".to_owned(),
            ),
            ("CERTFLEET_PROBE__CONCURRENCY".to_owned(), "64".to_owned()),
            ("CERTFLEET_PROBE__INTERVAL".to_owned(), "2h".to_owned()),
        ];
        let config = Config::from_parts("[probe]\nconcurrency = 8\n", env, "test").expect("ok");
        assert_eq!(config.database.url, "postgres://u:pw@db/x");
        assert_eq!(config.probe.concurrency, 64);
        assert_eq!(config.probe.interval, Duration::from_secs(7200));
        assert!(!format!("{:?}", config.database).contains("pw"));
    }

    #[test]
    fn zones_are_read_from_the_file_and_the_environment_and_checked() {
        let text = "[[zones]]\nname = \"eu1\"\ncidrs = [\"10.1.0.0/16\"]\n\n\
                    [[zones]]\nname = \"lab\"\n";
        let env = vec![(
            "CERTFLEET_PROBE__ZONES".to_owned(),
            "[\"eu1\", \"lab\"]".to_owned(),
        )];
        let config = Config::from_parts(text, env, "t").expect("zones parse");
        assert_eq!(config.zones.len(), 2);
        assert_eq!(
            config.zones[0].cidrs,
            vec!["10.1.0.0/16".parse::<IpNet>().expect("net")]
        );
        assert!(config.zones[1].cidrs.is_empty());
        assert_eq!(config.probe.zones, ["eu1", "lab"]);
        assert_eq!(config.probe.heartbeat, Duration::from_secs(10));
        for (bad, named) in [
            ("[[zones]]\nname = \"a b\"\n", "zones[0].name"),
            (
                "[[zones]]\nname = \"a\"\n[[zones]]\nname = \"a\"\n",
                "zones[1].name",
            ),
            (
                "[[zones]]\nname = \"a\"\ncidrs = [\"10.0.0.0/33\"]\n",
                "zones",
            ),
            ("[[zones]]\nname = \"a\"\nnets = []\n", "nets"),
            ("[probe]\nzones = [\"\"]\n", "probe.zones[0]"),
            ("[probe]\nheartbeat = \"0s\"\n", "probe.heartbeat"),
        ] {
            let error = Config::from_parts(bad, no_env(), "t").expect_err(bad);
            assert!(format!("{error:#}").contains(named), "{bad}: {error:#}");
        }
    }

    #[test]
    fn probe_lease_is_optional_and_read_as_a_duration() {
        let config = Config::from_parts("", no_env(), "t").expect("ok");
        assert_eq!(config.probe.lease, None);
        let config = Config::from_parts("[probe]\nlease = \"10s\"\n", no_env(), "t").expect("ok");
        assert_eq!(config.probe.lease, Some(Duration::from_secs(10)));
    }

    #[test]
    fn sqlite_synchronous_is_full_unless_normal_is_chosen() {
        use certfleet_store::SqliteSynchronous;
        let config = Config::from_parts("", no_env(), "t").expect("ok");
        assert_eq!(config.database.sqlite_synchronous, SqliteSynchronous::Full);
        let text = "[database]\nsqlite_synchronous = \"normal\"\n";
        let config = Config::from_parts(text, no_env(), "t").expect("ok");
        assert_eq!(
            config.database.sqlite_synchronous,
            SqliteSynchronous::Normal
        );
        let env = vec![(
            "CERTFLEET_DATABASE__SQLITE_SYNCHRONOUS".to_owned(),
            "full".to_owned(),
        )];
        let config = Config::from_parts(text, env, "t").expect("ok");
        assert_eq!(config.database.sqlite_synchronous, SqliteSynchronous::Full);
        let text = "[database]\nsqlite_synchronous = \"off\"\n";
        let error = Config::from_parts(text, no_env(), "t").expect_err("unknown value");
        assert!(format!("{error:#}").contains("off"), "{error:#}");
    }

    #[test]
    fn a_read_replica_needs_postgresql_on_both_sides() {
        let config = Config::from_parts("", no_env(), "t").expect("defaults");
        assert!(config.database.read_url.is_empty());
        assert_eq!(config.database.read_max_lag, Duration::from_secs(30));
        let text = "[database]\nurl = \"postgres://db/x\"\nread_url = \"postgres://u:pw@replica/x\"\nread_max_lag = \"5s\"\n";
        let config = Config::from_parts(text, no_env(), "t").expect("a replica");
        assert_eq!(config.database.read_max_lag, Duration::from_secs(5));
        assert!(!format!("{:?}", config.database).contains("pw"));
        let env = vec![(
            "CERTFLEET_DATABASE__READ_URL".to_owned(),
            "postgresql://replica/x".to_owned(),
        )];
        let config = Config::from_parts("[database]\nurl = \"postgres://db/x\"\n", env, "t")
            .expect("a replica from the environment");
        assert_eq!(config.database.read_url, "postgresql://replica/x");
        for (bad, named) in [
            (
                "read_url = \"postgres://replica/x\"",
                "needs database.url to be PostgreSQL",
            ),
            (
                "url = \"postgres://db/x\"\nread_url = \"sqlite://copy.db\"",
                "must start with postgres://",
            ),
            (
                "url = \"postgres://db/x\"\nread_url = \"postgres://r/x\"\nread_max_lag = \"0s\"",
                "read_max_lag must be more than zero",
            ),
        ] {
            let text = format!("[database]\n{bad}\n");
            let error = Config::from_parts(&text, no_env(), "t").expect_err(bad);
            assert!(format!("{error:#}").contains(named), "{bad}: {error:#}");
        }
    }

    #[test]
    fn webhooks_are_read_with_their_format() {
        let text = r#"
[[notify.webhooks]]
url = "https://hooks.slack.com/services/T/B/X"
format = "slack"
apps = ["billing"]

[[notify.webhooks]]
name = "siem"
url = "http://127.0.0.1:9000/certfleet"
owners = ["security@example.com"]
secret_file = "/etc/certfleet/siem.secret"
"#;
        let config = Config::from_parts(text, no_env(), "t").expect("webhooks parse");
        let hooks = &config.notify.webhooks;
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].format, WebhookFormat::Slack);
        assert_eq!(hooks[0].apps, vec!["billing".to_owned()]);
        assert_eq!(hooks[1].format, WebhookFormat::Json, "json by default");
        assert_eq!(hooks[1].name.as_deref(), Some("siem"));
        assert!(!format!("{config:?}").contains("hooks.slack.com/services"));
    }

    #[test]
    fn malformed_webhooks_are_refused_when_read() {
        let cases = [
            (
                "url = \"https://h.example.com/\"\nformat = \"xml\"\n",
                "xml",
            ),
            ("url = \"https://h.example.com/\"\nheaders = 1\n", "headers"),
            ("format = \"json\"\n", "url"),
            ("url = 5\n", "url"),
        ];
        for (entry, named) in cases {
            let text = format!("[[notify.webhooks]]\n{entry}");
            let error = Config::from_parts(&text, no_env(), "t").expect_err(entry);
            assert!(format!("{error:#}").contains(named), "{entry}: {error:#}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!(Config::from_parts("[probe]\nallow = [\"10.0.0.0/33\"]\n", no_env(), "t").is_err());
        assert!(Config::from_parts("[probe]\ninterval = \"soon\"\n", no_env(), "t").is_err());
        let error = Config::from_parts("[probe]\nlifetime_fraction = 2.0\n", no_env(), "t")
            .expect_err("a fraction above 1");
        assert!(
            error.to_string().contains("probe.lifetime_fraction"),
            "{error}"
        );
        assert!(Config::from_parts("not toml at all [", no_env(), "t").is_err());
        let env = vec![("CERTFLEET_NOSUCH__KEY".to_owned(), "1".to_owned())];
        assert!(Config::from_parts("", env, "t").is_err());
    }

    #[test]
    fn events_are_off_by_default_and_a_bad_nats_url_is_refused() {
        let config = Config::from_parts("", no_env(), "t").expect("ok");
        assert!(!config.events.enabled());
        let text = "[events]\nnats_url = \"nats://127.0.0.1:4222\"\n";
        let config = Config::from_parts(text, no_env(), "t").expect("ok");
        assert!(config.events.enabled());
        assert_eq!(config.events.duplicate_window, Duration::from_secs(600));
        for text in [
            "[events]\nnats_url = \"http://127.0.0.1:4222\"\n",
            "[events]\nnats_url = \"nats://host:port\"\n",
            "[events]\nnats_url = \"nats://127.0.0.1:4222\"\nbatch = 0\n",
            "[events]\nnats_url = \"nats://127.0.0.1:4222\"\nstream = \"a.b\"\n",
            "[events]\nnats_url = \"nats://127.0.0.1:4222\"\nduplicate_window = \"soon\"\n",
            "[events]\nnats = \"nats://127.0.0.1:4222\"\n",
        ] {
            let error = Config::from_parts(text, no_env(), "t").expect_err(text);
            assert!(
                format!("{error:#}").contains("events") || format!("{error:#}").contains("nats"),
                "{error:#}"
            );
        }
    }
}
