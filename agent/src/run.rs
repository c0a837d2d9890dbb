//! The agent's cycle: collect, then print or deliver; once, or every interval with jitter
//! until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::collect::{collect, CollectOptions, Visibility};
use crate::deliver::{random_fraction, RetryPolicy, Sender};
use crate::http::{Bearer, Client};
use crate::local_probe::{self, ProbeLocal};
use crate::proc::{text, ProcFs, Process};
use crate::report::Collected;
use crate::spool::Spool;
use crate::{AgentConfig, Error};

/// What `certfleet agent` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Collect once and print the report (JSON) on standard output; no server.
    Print,
    /// One cycle: collect, deliver (spool first), exit.
    Once,
    /// A cycle every interval until stopped.
    Forever,
}

/// Runs the agent. `Ok(true)` when every report reached the server (always, for `Print`).
pub async fn run(config: AgentConfig, mode: Mode) -> Result<bool, Error> {
    if mode == Mode::Print {
        let collected = collect_once(&config).await?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        collected.write_json(&mut out)?;
        writeln!(out)
            .and_then(|()| out.flush())
            .map_err(Error::Print)?;
        return Ok(true);
    }
    let sender = sender(&config).await?;
    if mode == Mode::Once {
        return cycle(&config, &sender).await;
    }
    let splay = config.splay.min(config.interval).mul_f64(random_fraction());
    tracing::info!(server = %config.server, interval = ?config.interval, first_in = ?splay,
        "certfleet agent started");
    if wait_or_stop(splay).await {
        return Ok(true);
    }
    loop {
        if let Err(error) = cycle(&config, &sender).await {
            tracing::error!(%error, "collection failed");
        }
        let next = config.interval.mul_f64(0.9 + 0.2 * random_fraction());
        if wait_or_stop(next).await {
            tracing::info!("stopping");
            return Ok(true);
        }
    }
}

/// The delivery side, from the configuration.
async fn sender(config: &AgentConfig) -> Result<Sender, Error> {
    if config.server.trim().is_empty() {
        let message = "no server to send to (set it, or use --print)";
        return Err(Error::config("agent.server", message));
    }
    let client = Client::new(&config.server, config.ca_file.as_deref(), config.timeout)?;
    let mut token = config.resolved_token()?;
    if token.is_empty() {
        let secret = config.resolved_enroll_secret()?;
        if secret.is_empty() {
            let message = "no token (token, token_file or CERTFLEET_AGENT__TOKEN) and no \
                           enroll_secret to get one";
            return Err(Error::config("agent.token", message));
        }
        let identity = Collected::identity(config);
        let secret = Bearer::new("agent.enroll_secret", &secret)?;
        token = crate::enroll::credential(
            &client,
            &secret,
            &config.credential_file,
            &identity.machine_id,
            &identity.hostname,
        )
        .await?;
    }
    let token = Bearer::new("agent.token", &token)?;
    let spool = if config.spool_dir.as_os_str().is_empty() {
        None
    } else {
        match Spool::open(
            &config.spool_dir,
            config.spool_max_reports,
            config.spool_max_bytes,
        ) {
            Ok(spool) => Some(spool),
            Err(error) => {
                tracing::warn!(%error, "no spool: reports are lost while the server is down");
                None
            }
        }
    };
    let retry = RetryPolicy {
        attempts: config.retry_attempts.max(1),
        backoff: config.retry_backoff,
        backoff_max: config.retry_backoff_max,
    };
    Ok(Sender::new(client, token, retry, spool))
}

/// Collects, compresses and delivers one report.
async fn cycle(config: &AgentConfig, sender: &Sender) -> Result<bool, Error> {
    let collected = collect_once(config).await?;
    let body = collected.gzip()?;
    drop(collected);
    let outcome = sender.deliver(&body).await;
    if outcome.is_complete() {
        tracing::info!(delivered = outcome.delivered, "cycle done");
    } else {
        let error = outcome.error.as_ref().map(ToString::to_string);
        tracing::warn!(
            delivered = outcome.delivered,
            spooled = outcome.spooled,
            dropped = outcome.dropped,
            error = error.as_deref().unwrap_or(""),
            "report not delivered"
        );
    }
    Ok(outcome.is_complete())
}

/// One collection pass off the async threads, logged.
pub async fn collect_once(config: &AgentConfig) -> Result<Collected, Error> {
    let options = CollectOptions {
        proc_root: config.proc_root.clone(),
        docker_root: config.docker_root.clone(),
        containerd_root: config.containerd_root.clone(),
        ..CollectOptions::default()
    };
    let started = Instant::now();
    // A pass is a few milliseconds of /proc reads: on a multi-threaded runtime it runs in
    // place (no extra thread, no extra memory arena); elsewhere it simply blocks.
    let pass = || collect(&options).map(|collection| Collected::new(config, collection));
    let mut collected = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(pass)?,
        _ => pass()?,
    };
    if config.probe_local != ProbeLocal::Off {
        collected.probes = probe_local(config, &collected).await?;
    }
    let peak_rss = ProcFs::new("/proc")
        .own_status()
        .as_deref()
        .and_then(text::peak_rss_kib);
    let visibility = &collected.collection.visibility;
    tracing::info!(
        sockets = collected.collection.len(),
        namespaces = visibility.namespaces,
        processes = visibility.processes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        peak_rss_kib = peak_rss.unwrap_or_default(),
        "collected"
    );
    log_visibility(visibility);
    Ok(collected)
}

/// The agent's own probes of the pass's listeners (see `local_probe`).
async fn probe_local(
    config: &AgentConfig,
    collected: &Collected,
) -> Result<Vec<certfleet_model::ProbeResult>, Error> {
    let own_netns = ProcFs::new(&config.proc_root).netns(Process::Current).ok();
    let sockets = collected.collection.sockets();
    let targets = local_probe::targets(config.probe_local, own_netns, sockets);
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let host = &collected.host;
    let own: Vec<IpAddr> = host
        .addresses
        .iter()
        .chain(&host.namespace_addresses)
        .copied()
        .collect();
    let prober = local_probe::prober(config, &own)?;
    Ok(local_probe::probe_all(&prober, &targets, config.probe_concurrency).await)
}

/// Says plainly what the agent could not see, and why.
fn log_visibility(visibility: &Visibility) {
    if visibility.sockets_left_out > 0 {
        tracing::warn!(
            left_out = visibility.sockets_left_out,
            "more listening sockets than a report may hold; the rest are left out"
        );
    }
    let without = visibility.container_state_missing + visibility.container_state_invalid;
    if without > 0 {
        tracing::warn!(
            containers = visibility.containers,
            missing = visibility.container_state_missing,
            invalid = visibility.container_state_invalid,
            "{without} of {} containers have no usable runtime state (Docker's \
             config.v2.json, containerd's config.json): their sockets carry the host's tags",
            visibility.containers,
        );
    }
    if !visibility.is_partial() {
        return;
    }
    let (who, remedy) = match visibility.uid {
        Some(0) => (
            "even as root".to_owned(),
            "Such processes are protected from ptrace (another PID namespace's init, a \
             security module).",
        ),
        uid => (
            format!("running without root (uid {})", uid.map_or(-1, i64::from)),
            "Run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see them.",
        ),
    };
    tracing::warn!(
        "{who}: the open files of {} of {} processes could not be read, so {} listening \
         sockets have no process name; the network namespace of {} processes could not be \
         read, so their namespaces were told apart by their socket tables and are reported \
         with netns null. {remedy}",
        visibility.fds_unreadable,
        visibility.processes,
        visibility.sockets_without_process,
        visibility.netns_unreadable,
    );
}

/// Sleeps for `duration`; `true` when SIGTERM or Ctrl-C came first.
async fn wait_or_stop(duration: Duration) -> bool {
    let sleep = tokio::time::sleep(duration);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = sleep => false,
                _ = tokio::signal::ctrl_c() => true,
                _ = terminate.recv() => true,
            };
        }
    }
    tokio::select! {
        _ = sleep => false,
        _ = tokio::signal::ctrl_c() => true,
    }
}
