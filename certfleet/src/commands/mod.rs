//! One module per subcommand (`demo` is a folder: its PKI and its TLS servers are its own).
//! The service roles that `serve` runs are the `certfleet-service` crate.

mod admin;
mod agent;
mod demo;
mod export;
mod notify;
mod output;
mod probe;
mod serve;
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
                operator,
                host,
            } => match (agent, operator) {
                (_, Some(operator)) => admin::create_operator_token(config, &operator).await,
                (Some(agent), None) => admin::create_token(config, &agent, host.as_deref()).await,
                // clap requires one of the two.
                (None, None) => anyhow::bail!("token create needs --agent NAME or --operator NAME"),
            },
            TokenCommand::List { config } => admin::list_tokens(config).await,
            TokenCommand::Revoke { config, agent } => admin::revoke_tokens(config, &agent).await,
        },
        Command::Notify(args) => notify::run(args).await,
        Command::Settle(args) => admin::settle(args).await,
        Command::Export(args) => export::run(args).await,
    }
}
