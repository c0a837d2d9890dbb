//! The certfleet command line: parse arguments, set up logging, run the subcommand.

mod cli;
mod commands;
mod config;
mod events_config;
mod logging;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let log_format = cli
        .log_format
        .or_else(|| configured_log_format(&cli.command))
        .unwrap_or_default();
    logging::init(cli.verbose, log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("certfleet: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("certfleet: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `log.format` from the command's config file and `CERTFLEET_LOG__FORMAT`. A config that
/// does not load gives the default here; the command itself then reports the error.
fn configured_log_format(command: &cli::Command) -> Option<logging::LogFormat> {
    let config = config::Config::load(command.config_path()).ok()?;
    Some(config.log.format)
}
