//! `certfleet agent`: the host agent (the certfleet-agent crate), configured from the
//! `[agent]` section of --config, CERTFLEET_AGENT__* variables and flags.

use std::process::ExitCode;

use anyhow::Context;
use certfleet_agent::{AgentConfig, Mode};

use crate::cli::AgentArgs;

pub async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let mut config = AgentConfig::load(args.config.config.as_deref())?;
    if let Some(server) = args.server {
        config.server = server;
    }
    if let Some(token) = args.token {
        config.token = token;
    }
    if let Some(interval) = args.interval {
        config.interval = interval;
    }
    if let Some(dir) = args.spool_dir {
        config.spool_dir = dir.into();
    }
    if let Some(root) = args.proc_root {
        config.proc_root = root;
    }
    for tag in &args.tags {
        let tags = certfleet_agent::parse_tags(tag)
            .map_err(|message| anyhow::anyhow!(message))
            .with_context(|| format!("invalid --tag {tag:?}"))?;
        config.tags.extend(tags);
    }
    config.validate()?;
    let mode = if args.print {
        Mode::Print
    } else if args.once {
        Mode::Once
    } else {
        Mode::Forever
    };
    let delivered = certfleet_agent::run(config, mode).await?;
    Ok(if delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
