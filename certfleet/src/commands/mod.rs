//! One module per subcommand.

mod output;
mod probe;
mod targets;

use std::process::ExitCode;

use crate::cli::Command;

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Probe(args) => probe::run(args).await,
    }
}
