//! `certfleet migrate` and `certfleet token create|list|revoke`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use certfleet_store::{
    AgentName, ProbeSchedule, ReadModel, ReplicaOptions, Replicated, Store, StoreOptions,
};

use crate::cli::ConfigArgs;
use certfleet_model::redact_url;

use crate::config::Config;

pub async fn migrate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    open_store(&config).await?;
    println!("migrations applied to {}", redact_url(&config.database.url));
    Ok(ExitCode::SUCCESS)
}

pub async fn create_token(
    args: ConfigArgs,
    agent: &str,
    host: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let store = open_store(&config).await?;
    let agent = AgentName::new(agent).context("invalid --agent")?;
    let host = host.map(str::trim).filter(|host| !host.is_empty());
    if host.is_some_and(|host| host.len() > 512 || host.chars().any(char::is_control)) {
        anyhow::bail!("invalid --host: at most 512 printable bytes");
    }
    let token = store
        .create_token(&agent, host)
        .await
        .context("cannot create the token")?;
    match host {
        Some(host) => eprintln!(
            "token for agent {agent}, bound to host {host} (shown once; only its hash is stored):"
        ),
        None => eprintln!("token for agent {agent} (shown once; only its hash is stored):"),
    }
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `certfleet token create --operator NAME`: a token that may ask for probes.
pub async fn create_operator_token(args: ConfigArgs, operator: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let store = open_store(&config).await?;
    let operator = AgentName::new(operator).context("invalid --operator")?;
    let token = store
        .create_operator_token(&operator)
        .await
        .context("cannot create the token")?;
    eprintln!("operator token for {operator} (shown once; only its hash is stored):");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `certfleet token list`: one line per token, never the token itself.
pub async fn list_tokens(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let store = open_store(&config).await?;
    let tokens = store.tokens().await.context("cannot list the tokens")?;
    println!(
        "{:<40} {:<9} {:<36} {:<22} revoked",
        "name", "kind", "host", "created"
    );
    for token in tokens {
        let when = |time: time::OffsetDateTime| {
            time.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        println!(
            "{:<40} {:<9} {:<36} {:<22} {}",
            token.agent,
            token.kind.as_str(),
            token.host_key.as_deref().unwrap_or("(any)"),
            when(token.created_at),
            token.revoked_at.map(when).unwrap_or_else(|| "-".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `certfleet token revoke NAME`: every token of the agent, at once.
pub async fn revoke_tokens(args: ConfigArgs, agent: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let store = open_store(&config).await?;
    let agent = AgentName::new(agent).context("invalid agent name")?;
    let revoked = store
        .revoke_tokens(&agent)
        .await
        .context("cannot revoke the tokens")?;
    if revoked == 0 {
        eprintln!("no active token of {agent}");
        return Ok(ExitCode::from(1));
    }
    println!("revoked {revoked} token(s) of {agent}");
    Ok(ExitCode::SUCCESS)
}

/// `certfleet settle ENDPOINT --to HOST | --dismiss`.
pub async fn settle(args: crate::cli::SettleArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.config.as_deref())?;
    let store = open_store(&config).await?;
    let endpoint = certfleet_store::EndpointId(args.endpoint);
    let to = if args.dismiss {
        None
    } else {
        args.to.as_deref()
    };
    match store.settle_conflict(endpoint, to).await {
        Ok(removed) => {
            match to {
                Some(host) => println!(
                    "endpoint {} given to {host}; {removed} claim(s) settled",
                    args.endpoint
                ),
                None => println!("endpoint {}: {removed} claim(s) dismissed", args.endpoint),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) if error.is_not_found() => {
            eprintln!("no such claim on endpoint {}", args.endpoint);
            Ok(ExitCode::from(1))
        }
        Err(error) => Err(error).context("cannot settle the conflict"),
    }
}

/// Every threshold an owner may be told at: `notify.thresholds` and the owner rules' own.
fn every_threshold(config: &Config) -> Vec<u32> {
    let mut thresholds = config.notify.thresholds.clone();
    for rule in &config.owners.rules {
        thresholds.extend(rule.thresholds.iter().flatten());
    }
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds
}

/// The store's options from the configuration.
fn store_options(config: &Config) -> anyhow::Result<StoreOptions> {
    let interval = time::Duration::try_from(config.probe.interval)
        .context("probe.interval is out of range")?;
    let report_window = time::Duration::try_from(config.retention.report_window)
        .context("retention.report_window is out of range")?;
    Ok(StoreOptions {
        claim_window: report_window,
        max_connections: config.database.max_connections.max(1),
        sqlite_synchronous: config.database.sqlite_synchronous,
        present_names: config.probe.present_names,
        events: config.events.enabled(),
        zones: config.zones.clone(),
        schedule: ProbeSchedule {
            interval,
            min_interval: time::Duration::try_from(config.probe.min_interval)
                .context("probe.min_interval is out of range")?,
            lifetime_fraction: config.probe.lifetime_fraction,
            thresholds: every_threshold(config),
            short_lived_days: config.notify.short_lived_days,
            retry_after: time::Duration::try_from(config.probe.retry_after)
                .context("probe.retry_after is out of range")?,
            unreported_after: report_window,
            ..ProbeSchedule::default()
        },
        ..StoreOptions::default()
    })
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = store_options(config)?;
    let url = redact_url(&config.database.url);
    let store = certfleet_store::connect(&config.database.url, options)
        .await
        .with_context(|| format!("cannot open database {url}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate database {url}"))?;
    Ok(store)
}

/// The store every write goes to, and where reads of the API and `export` go: the read
/// replica (`database.read_url`) when one is configured, else the same store.
pub struct Stores {
    pub store: Arc<dyn Store>,
    pub reads: Arc<dyn ReadModel>,
    pub replica: Option<Arc<Replicated>>,
}

/// Opens the configured database (migrated) and its read replica, if any. The replica is
/// connected lazily: a replica down now only means reads from the primary until it answers.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let read_url = &config.database.read_url;
    if read_url.is_empty() {
        let store = open_store(config).await?;
        let reads = store.clone();
        return Ok(Stores {
            store,
            reads,
            replica: None,
        });
    }
    let url = redact_url(&config.database.url);
    let (store, replica) = certfleet_store::connect_with_replica(
        &config.database.url,
        read_url,
        store_options(config)?,
        ReplicaOptions::new(config.database.read_max_lag),
    )
    .await
    .with_context(|| format!("cannot open database {url} and its replica"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate database {url}"))?;
    Ok(Stores {
        store,
        reads: replica.clone(),
        replica: Some(replica),
    })
}
