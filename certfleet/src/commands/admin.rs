//! `certfleet migrate` and `certfleet token create`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use certfleet_store::{AgentName, ProbeSchedule, Store, StoreOptions};

use crate::cli::ConfigArgs;
use crate::config::{redact_url, Config};

pub async fn migrate(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    open_store(&config).await?;
    println!("migrations applied to {}", redact_url(&config.database.url));
    Ok(ExitCode::SUCCESS)
}

pub async fn create_token(args: ConfigArgs, agent: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let store = open_store(&config).await?;
    let agent = AgentName::new(agent).context("invalid --agent")?;
    let token = store
        .create_agent_token(&agent)
        .await
        .context("cannot create the token")?;
    eprintln!("token for agent {agent} (shown once; only its hash is stored):");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Opens the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let interval = time::Duration::try_from(config.probe.interval)
        .context("probe.interval is out of range")?;
    let options = StoreOptions {
        max_connections: config.database.max_connections.max(1),
        sqlite_synchronous: config.database.sqlite_synchronous,
        present_names: config.probe.present_names,
        schedule: ProbeSchedule {
            interval,
            ..ProbeSchedule::default()
        },
        ..StoreOptions::default()
    };
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
