//! `certfleet probe`: probe endpoints and stream what they serve.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use certfleet_prober::{NetworkPolicy, Prober, ProberConfig, StartTlsMode, TrustStore};
use futures::stream::{self, BoxStream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use super::output::ResultWriter;
use super::targets::{self, TargetLine};
use crate::cli::ProbeArgs;

pub async fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let starttls = match args.starttls.as_deref() {
        None => StartTlsMode::ByPort,
        Some(name) => name.parse::<StartTlsMode>().map_err(anyhow::Error::msg)?,
    };
    let mut trust = TrustStore::mozilla();
    for path in &args.ca_files {
        trust.add_pem_file(path)?;
    }
    let config = ProberConfig {
        timeout: args.timeout,
        connect_timeout: args.timeout.min(ProberConfig::default().connect_timeout),
        policy: NetworkPolicy::new(args.allow.clone(), args.deny.clone()),
        trust,
        include_pem: args.pem,
        nameservers: (!args.dns_servers.is_empty()).then(|| args.dns_servers.clone()),
        starttls,
        ..ProberConfig::default()
    };
    let sni = args.sni.as_deref();
    let from_args = targets::from_args(&args.targets, sni)?;
    let known_count = from_args.len();
    let mut sources: Vec<BoxStream<'static, TargetLine>> =
        vec![stream::iter(from_args.into_iter().map(Ok)).boxed()];
    if let Some(path) = &args.file {
        sources.push(targets::from_file(path, args.sni.clone()).await?);
    }
    let wants_stdin = args.targets.iter().any(|arg| arg == "-");
    if wants_stdin {
        sources.push(targets::from_stdin(args.sni.clone()));
    }
    if known_count == 0 && args.file.is_none() && !wants_stdin {
        bail!("no targets: give host:port arguments, -f FILE, or - for standard input");
    }

    let progress = progress_bar(&args, known_count, args.file.is_some() || wants_stdin);
    let prober = Arc::new(Prober::new(config));
    let mut bad_lines = 0usize;
    let mut results = stream::iter(sources)
        .flatten()
        .filter_map(|line| {
            let kept = match line {
                Ok(target) => Some(target),
                Err(message) => {
                    eprintln!("certfleet: skipped {message}");
                    bad_lines += 1;
                    None
                }
            };
            futures::future::ready(kept)
        })
        .map(|target| {
            let prober = prober.clone();
            // Spawned, so that handshakes run on every worker thread, not only on the one
            // that drives this stream.
            let task = tokio::spawn(async move { prober.probe(&target).await });
            async move {
                task.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "a probe task failed; its target has no result");
                    Vec::new()
                })
            }
        })
        .buffer_unordered(args.concurrency);

    let stdout = std::io::stdout();
    let mut writer = ResultWriter::new(stdout.lock(), args.format);
    while let Some(batch) = results.next().await {
        for result in &batch {
            match writer.write(result) {
                Ok(()) => {}
                // The reader went away (`| head`): stop probing, like any Unix filter.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(ExitCode::SUCCESS)
                }
                Err(error) => return Err(error).context("cannot write to standard output"),
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    drop(results);
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if bad_lines > 0 {
        eprintln!("certfleet: {bad_lines} target line(s) were not valid and were skipped");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr, only for a person watching many targets.
fn progress_bar(args: &ProbeArgs, known: usize, streaming: bool) -> Option<ProgressBar> {
    if args.no_progress || !std::io::stderr().is_terminal() || (known < 20 && !streaming) {
        return None;
    }
    let bar = if streaming {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(known as u64)
    };
    let template = if streaming {
        "{spinner} {pos} targets probed, {per_sec}"
    } else {
        "{bar:40} {pos}/{len} targets, {per_sec}, eta {eta}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    Some(bar)
}
