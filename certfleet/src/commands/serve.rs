//! `certfleet serve`: wire the store, the HTTP router, the prober workers and the scheduler.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use certfleet_prober::{NetworkPolicy, Prober, ProberConfig, Resolver, TrustStore};
use certfleet_web::RoleHealth;
use certfleet_web::{AppState, IngestLimits, ProbeNow};
use tokio_util::sync::CancellationToken;

use super::admin::open_stores;
use certfleet_service::ptr_names::PtrNames;
use certfleet_service::supervise::{Ended, Roles};
use certfleet_service::{events, prober_worker, scheduler, static_targets};

use super::notify;
use crate::cli::{Role, ServeArgs};
use crate::config::{Config, ServerConfig};

/// How often an idle prober asks for due endpoints: a probe asked for now is leased within
/// it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// How long in-flight work may take to finish once the roles are asked to stop.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.config.as_deref())?;
    let roles = roles(&config, args.roles.as_deref())?;
    let service = start(&config, &roles, args.listen.clone()).await?;
    if let Some(address) = service.address {
        println!("certfleet: listening on http://{address}");
    }
    match service.roles.run_until(wait_for_signal(), DRAIN).await {
        Ended::Stopped => Ok(ExitCode::SUCCESS),
        // Exit non-zero so that the service manager starts the whole process again.
        Ended::Failed { role, .. } => {
            eprintln!("certfleet: the {role} role stopped; exiting");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The roles asked for, or the default ones: api, prober, scheduler, and events when
/// `[events]` is configured.
pub fn roles(config: &Config, asked: Option<&[Role]>) -> anyhow::Result<Vec<Role>> {
    let Some(asked) = asked else {
        let mut roles = vec![Role::Api, Role::Prober, Role::Scheduler];
        if config.events.enabled() {
            roles.push(Role::Events);
        }
        return Ok(roles);
    };
    if asked.contains(&Role::Events) && !config.events.enabled() {
        anyhow::bail!("the events role needs events.nats_url (the NATS server to publish to)");
    }
    Ok(asked.to_vec())
}

/// A running service: its supervised roles, and the HTTP address when the api role runs.
pub struct Service {
    pub address: Option<std::net::SocketAddr>,
    pub store: Arc<dyn certfleet_store::Store>,
    roles: Roles,
}

impl Service {
    /// Asks every role to stop and waits (at most 30 s) for in-flight work to finish.
    pub async fn stop(self) {
        tracing::info!("shutting down");
        self.roles.stop(DRAIN).await;
    }
}

/// Opens the store and starts the given roles.
pub async fn start(
    config: &Config,
    roles: &[Role],
    listen: Option<String>,
) -> anyhow::Result<Service> {
    let stores = open_stores(config).await?;
    let store = stores.store.clone();
    let health = RoleHealth::default();
    let mut tasks = Roles::new(health.clone(), CancellationToken::new());
    let shutdown = tasks.shutdown();

    let mut address = None;
    // Bound first, so that the links in mails can name where the service really answers.
    let listener = if roles.contains(&Role::Api) {
        let listen = listen.unwrap_or_else(|| config.server.listen.clone());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        Some(listener)
    } else {
        None
    };
    if roles.contains(&Role::Prober) {
        let prober = Arc::new(Prober::new(prober_config(config)?));
        let options = prober_worker::WorkerOptions {
            worker_id: worker_id(),
            batch: config.probe.batch.max(1),
            concurrency: config.probe.concurrency.max(1),
            lease_for: config
                .probe
                .lease
                .unwrap_or((config.probe.timeout * 4).max(Duration::from_secs(300))),
            idle_poll: IDLE_POLL,
            max_per_address: config.probe.max_per_address.max(1),
            connections_per_second: config.probe.connections_per_second,
            zones: config.probe.zones.clone(),
            heartbeat: config.probe.heartbeat,
        };
        let ptr_names = config
            .probe
            .ptr_names
            .then(|| Arc::new(PtrNames::new(resolver(config))));
        tasks.spawn(
            "prober",
            prober_worker::run(store.clone(), prober, ptr_names, options, shutdown.clone()),
        );
    }
    if roles.contains(&Role::Scheduler) && !config.probe.targets.is_empty() {
        tasks.spawn(
            "static-targets",
            static_targets::run(
                store.clone(),
                config.probe.targets.clone(),
                resolver(config),
                config.probe.targets_refresh,
                shutdown.clone(),
            ),
        );
    }
    if roles.contains(&Role::Scheduler) {
        let chores = scheduler::Housekeeping {
            retire_after: time::Duration::days(i64::from(config.retention.endpoint_days.max(1))),
            retention: config.retention.policy(),
            batches_per_run: config.retention.batches_per_run,
        };
        let every = config.notify.interval.max(Duration::from_secs(1));
        let notifier = match listener.as_ref().map(|l| l.local_addr()).transpose()? {
            Some(bound) if config.server.base_url == ServerConfig::default().base_url => {
                // base_url left at its default: the links name the address bound.
                notify::build_linked(config, store.clone(), &format!("http://{bound}"))?
            }
            _ => notify::build(config, store.clone())?,
        };
        tasks.spawn(
            "scheduler",
            scheduler::run(
                store.clone(),
                every,
                chores,
                Some(notifier),
                shutdown.clone(),
            ),
        );
    }
    if roles.contains(&Role::Events) {
        let jetstream = config.events.jetstream();
        let options = events::RoleOptions {
            batch: config.events.batch,
            poll: config.events.poll,
            retention: time::Duration::try_from(config.events.retention)
                .context("events.retention is out of range")?,
        };
        let connect = move || {
            let jetstream = jetstream.clone();
            async move { events::JetStreamPublisher::connect(&jetstream).await }
        };
        tasks.spawn(
            "events",
            events::run(
                store.clone(),
                connect,
                options,
                Arc::new(events::Counters::default()),
                shutdown.clone(),
            ),
        );
    }
    if let (Some(replica), true) = (&stores.replica, listener.is_some()) {
        // Supervised like a role: if the checks stopped, reads would stay wherever the
        // last check sent them.
        let (replica, stop) = (replica.clone(), shutdown.clone());
        tasks.spawn("replica-watch", async move {
            replica.watch(stop.cancelled_owned()).await;
        });
    }
    if let Some(listener) = listener {
        let bound = listener.local_addr()?;
        address = Some(bound);
        let read_token = Some(config.server.read_token.clone()).filter(|token| !token.is_empty());
        let state = AppState {
            store: store.clone(),
            reads: stores.reads.clone(),
            replica: stores.replica.clone(),
            ingest: IngestLimits {
                max_in_flight: config.server.ingest_concurrency,
                ..IngestLimits::default()
            },
            read_token,
            osquery_enroll_secret: Some(config.osquery.enroll_secret.clone())
                .filter(|secret| !secret.is_empty()),
            agent_enroll_secret: Some(config.server.agent_enroll_secret.clone())
                .filter(|secret| !secret.is_empty()),
            roles: health.clone(),
            probe_now: ProbeNow {
                window: config.server.probe_now_window,
                expected_within: expected_within(config),
                link_key: config.server.link_key()?,
            },
        };
        let window = config.server.metrics_expiry_window;
        let options = certfleet_web::WebOptions {
            metrics_expiry_window: time::Duration::try_from(window)
                .unwrap_or(time::Duration::days(14)),
            ..certfleet_web::WebOptions::default()
        };
        let app = certfleet_web::router_with(state, options);
        let api_shutdown = shutdown.clone();
        tasks.spawn("api", async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { api_shutdown.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "HTTP server failed");
            }
        });
        tracing::info!(address = %bound, "listening");
    }
    let names: Vec<String> = roles
        .iter()
        .map(|role| format!("{role:?}").to_lowercase())
        .collect();
    tracing::info!(roles = %names.join(","), "certfleet serve started");
    Ok(Service {
        address,
        store,
        roles: tasks,
    })
}

/// How long after a probe request its result is expected: a prober's idle poll (1 s),
/// one probe (at most the probe timeout) and the recording (a fraction of a second), with
/// room for a busy database.
fn expected_within(config: &Config) -> Duration {
    IDLE_POLL + config.probe.timeout + Duration::from_secs(4)
}

pub(super) fn prober_config(config: &Config) -> anyhow::Result<ProberConfig> {
    let mut trust = TrustStore::mozilla();
    for path in &config.probe.ca_files {
        trust.add_pem_file(path)?;
    }
    Ok(ProberConfig {
        timeout: config.probe.timeout,
        connect_timeout: config.probe.timeout.min(Duration::from_secs(3)),
        policy: NetworkPolicy::new(config.probe.allow.clone(), config.probe.deny.clone()),
        trust,
        include_pem: true,
        nameservers: nameservers(config),
        ..ProberConfig::default()
    })
}

fn nameservers(config: &Config) -> Option<Vec<std::net::SocketAddr>> {
    Some(config.probe.nameservers.clone()).filter(|servers| !servers.is_empty())
}

fn resolver(config: &Config) -> Resolver {
    Resolver::new(nameservers(config))
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "prober".into());
    format!("{host}/{}", std::process::id())
}

pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
