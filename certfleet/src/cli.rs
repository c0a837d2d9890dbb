//! Command-line arguments (the contract in docs/architecture.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

#[derive(Debug, Parser)]
#[command(
    name = "certfleet",
    version,
    about = "Find every TLS certificate served across a fleet"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text or JSON (log.format; default text).
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub log_format: Option<crate::logging::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe TLS endpoints and print what they serve.
    Probe(ProbeArgs),
    /// Run the service: API, ingest, prober workers and scheduler (or a subset).
    Serve(ServeArgs),
    /// Everything on one machine: demo endpoints, the service, an agent, on SQLite.
    Demo(DemoArgs),
    /// Apply the database migrations and exit.
    Migrate(ConfigArgs),
    /// Run the host agent: report the listening sockets of the host and its containers.
    Agent(AgentArgs),
    /// Manage agent tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Expiry notifications: send what is due now, or --dry-run, --status, --test, --mute.
    Notify(NotifyArgs),
    /// Settle the conflicting claims on an endpoint (two hosts reporting one address and
    /// port; see `conflicts` in GET /api/v1/endpoints/{id}).
    Settle(SettleArgs),
    /// Stream the inventory (certificates or endpoints) as JSON lines or CSV, in constant
    /// memory, for a warehouse load.
    Export(ExportArgs),
}

/// What `certfleet export` streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    Certificates,
    Endpoints,
}

/// How `certfleet export` writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object a line, the API's fields.
    #[default]
    Jsonl,
    /// A header line, then one row a line; lists joined with spaces.
    Csv,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// `certificates` or `endpoints`.
    #[arg(value_enum)]
    pub what: ExportKind,
    #[arg(long, value_enum, default_value_t)]
    pub format: ExportFormat,
    /// Only rows last seen at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or a
    /// duration back from now (24h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

#[derive(Debug, Args)]
pub struct SettleArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The endpoint's id.
    pub endpoint: i64,
    /// Give the endpoint to this claiming host (its machine id, or `hostname:NAME`).
    #[arg(
        long,
        value_name = "HOST",
        conflicts_with = "dismiss",
        required_unless_present = "dismiss"
    )]
    pub to: Option<String>,
    /// Keep the endpoint's host and drop every claim.
    #[arg(long)]
    pub dismiss: bool,
}

impl Command {
    /// The --config file of the subcommands that take one.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        let config = match self {
            Command::Serve(args) => &args.config,
            Command::Migrate(config) => config,
            Command::Agent(args) => &args.config,
            Command::Token {
                command:
                    TokenCommand::Create { config, .. }
                    | TokenCommand::List { config }
                    | TokenCommand::Revoke { config, .. },
            } => config,
            Command::Notify(args) => &args.config,
            Command::Settle(args) => &args.config,
            Command::Export(args) => &args.config,
            Command::Probe(_) | Command::Demo(_) => return None,
        };
        config.config.as_deref()
    }
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML). CERTFLEET_SECTION__KEY variables override it.
    #[arg(long, value_name = "FILE", env = "CERTFLEET_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `certfleet agent`: flags override the `[agent]` section of --config and the
/// CERTFLEET_AGENT__* variables (docs/agent.md).
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Base URL of the certfleet service, http:// or https:// (agent.server).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Agent token (agent.token). Other local users can read a flag in the process list:
    /// prefer agent.token_file or CERTFLEET_AGENT__TOKEN.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Time between two collections (agent.interval), e.g. 1h, 15m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// Run one cycle (collect, deliver the spool and the report) and exit: 0 when
    /// everything was delivered, 1 when a report had to wait in the spool.
    #[arg(long)]
    pub once: bool,
    /// Collect once and print the report as JSON on standard output; send nothing.
    #[arg(long)]
    pub print: bool,
    /// Workload tag KEY=VALUE (app, env, owner); repeatable; overrides the configured tag.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Directory of undelivered reports (agent.spool_dir; "" disables the spool).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<String>,
    /// The /proc to read (agent.proc_root), e.g. /host/proc in a container.
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Role {
    /// HTTP: JSON API, ingest, web pages, health.
    Api,
    /// Lease due endpoints, probe them, record the results.
    Prober,
    /// Daily mTLS snapshots, endpoint retirement, expiry notifications.
    Scheduler,
    /// Publish change events to NATS JetStream (needs `[events] nats_url`).
    Events,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Roles this process takes, comma-separated. Default: api, prober and scheduler, and
    /// events when `[events]` is configured.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub roles: Option<Vec<Role>>,
    /// Listen address, overriding server.listen (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new token for an agent or an operator (only its hash is stored).
    #[command(group(clap::ArgGroup::new("holder").required(true).args(["agent", "operator"])))]
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// The agent's name, e.g. the fleet or host group it serves: the token reports.
        #[arg(long, value_name = "NAME")]
        agent: Option<String>,
        /// The operator's name: the token asks for probes (`POST
        /// /api/v1/endpoints/{id}/probe`); it never reports.
        #[arg(long, value_name = "NAME", conflicts_with = "host")]
        operator: Option<String>,
        /// Bind the token to one host: its reports must carry this machine id (or
        /// `hostname:NAME` for hosts without one); any other host gets 403.
        #[arg(long, value_name = "MACHINE_ID")]
        host: Option<String>,
    },
    /// List the tokens issued (name, kind, bound host, created, revoked); never the
    /// tokens.
    List {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Revoke every token of an agent or operator (an osquery node is
    /// `osquery:<host identifier>`); they get 401 from the next request on.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The agent or operator name the tokens were issued to.
        agent: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line, streamed as results arrive.
    Json,
    /// A readable summary, one line per endpoint.
    Table,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// host:port, [v6]:port or host:port@sni. `-` reads targets from standard input.
    pub targets: Vec<String>,
    /// Read targets from FILE, one per line (`#` starts a comment).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// SNI name to send for targets without their own `@sni`.
    #[arg(long)]
    pub sni: Option<String>,
    /// Plaintext protocol to upgrade with before the handshake: smtp, imap, pop3, ftp, ldap,
    /// postgres, xmpp, mysql; `auto` (default) picks by well-known port, `none` never.
    #[arg(long, value_name = "PROTO")]
    pub starttls: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Deadline for each probe (connect + handshake + mTLS verdict), e.g. 5s, 800ms.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Extra trust roots (PEM), added to the bundled Mozilla roots. Repeatable.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Only probe addresses inside these networks. Repeatable. Default: any unicast address.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<IpNet>,
    /// Never probe addresses inside these networks. Repeatable. Link-local and multicast
    /// are always denied.
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<IpNet>,
    /// Include each certificate's PEM in the JSON output.
    #[arg(long)]
    pub pem: bool,
    /// Name server(s) to resolve host names with, instead of /etc/resolv.conf (ip:port).
    #[arg(long = "dns-server", value_name = "ADDR")]
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `certfleet notify`: without a flag, one notification run (decide, claim, send).
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").multiple(false))]
pub struct NotifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Show the digests a run would send now; claim and send nothing.
    #[arg(long, group = "action")]
    pub dry_run: bool,
    /// Show the outbox: pending, failing (with reasons), sent, resolved; and mutes.
    #[arg(long, group = "action")]
    pub status: bool,
    /// Send a test message to ADDRESS through the configured transport.
    #[arg(long, value_name = "ADDRESS", group = "action")]
    pub test: Option<String>,
    /// Mute a certificate (by SHA-256): no notification for --for. Needs --reason.
    #[arg(long, value_name = "SHA256", group = "action", requires = "reason")]
    pub mute: Option<String>,
    /// Why the certificate is muted (shown by --status).
    #[arg(long)]
    pub reason: Option<String>,
    /// How long a mute lasts, e.g. 7d, 12h.
    #[arg(long = "for", value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub mute_for: Duration,
    /// End a certificate's mute.
    #[arg(long, value_name = "SHA256", group = "action")]
    pub unmute: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the dashboard listens.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Folder for the demo's database, certificates and notification emails.
    #[arg(long, default_value = "certfleet-demo", value_name = "DIR")]
    pub dir: PathBuf,
}
