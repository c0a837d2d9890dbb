//! One module per subcommand.

mod admin;
mod agent;
mod confirm;
mod demo;
mod demo_pki;
mod demo_servers;
mod notify;
mod output;
mod probe;
mod probe_lines;
mod prober_worker;
mod ptr_names;
mod scheduler;
mod serve;
mod static_targets;
mod supervise;
mod targets;

use std::process::ExitCode;

use crate::cli::{Command, TokenCommand};

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Probe(args) => probe::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => admin::migrate(args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Token { command } => match command {
            TokenCommand::Create {
                config,
                agent,
                host,
            } => admin::create_token(config, &agent, host.as_deref()).await,
            TokenCommand::List { config } => admin::list_tokens(config).await,
            TokenCommand::Revoke { config, agent } => admin::revoke_tokens(config, &agent).await,
        },
        Command::Notify(args) => notify::run(args).await,
        Command::Settle(args) => admin::settle(args).await,
    }
}
