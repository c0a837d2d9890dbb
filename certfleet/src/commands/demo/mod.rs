//! `certfleet demo`: everything on one machine. Local TLS endpoints with generated
//! certificates, the service (api, prober, scheduler) on an embedded SQLite file, an agent
//! report naming the endpoints, and notification emails written to a folder.

mod pki;
mod servers;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use certfleet_model::{AgentInfo, AgentReport, HostInfo, Protocol, SocketInfo, SocketScope};
use certfleet_store::AgentName;

use super::serve::{self, wait_for_signal};
use crate::cli::{DemoArgs, Role};
use crate::config::Config;
use pki::DemoPki;
use servers::ClientAuth;

/// One demo endpoint: what it shows, and the workload it belongs to.
struct Workload {
    hostname: &'static str,
    app: &'static str,
    env: &'static str,
    owner: &'static str,
    address: std::net::SocketAddr,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pki = DemoPki::new()?;
    let root_file = dir.join("demo-root.pem");
    std::fs::write(&root_file, &pki.root_pem)?;
    let client_ca = pki.client_ca();

    let mut workloads = Vec::new();
    let situations: Vec<(&str, &str, &str, &str, _, ClientAuth)> = vec![
        (
            "payments-1",
            "payments",
            "prod",
            "payments-team@demo.test",
            pki.leaf(&["payments.demo.test"], -85, 5, true)?,
            ClientAuth::Required,
        ),
        (
            "billing-1",
            "billing",
            "prod",
            "billing-team@demo.test",
            pki.leaf(&["billing.demo.test", "*.billing.demo.test"], -70, 20, true)?,
            ClientAuth::Optional,
        ),
        (
            "legacy-1",
            "legacy-portal",
            "prod",
            "legacy-team@demo.test",
            pki.leaf(&["legacy.demo.test"], -400, -3, true)?,
            ClientAuth::None,
        ),
        (
            "devbox-1",
            "devtools",
            "dev",
            "platform@demo.test",
            pki.self_signed(&["devbox.demo.test"], 365)?,
            ClientAuth::None,
        ),
        (
            "search-1",
            "search",
            "staging",
            "search-team@demo.test",
            pki.leaf(&["search.demo.test"], -10, 200, false)?,
            ClientAuth::None,
        ),
        (
            "web-1",
            "web",
            "prod",
            "web-team@demo.test",
            pki.leaf(&["www.demo.test", "demo.test"], -30, 300, true)?,
            ClientAuth::None,
        ),
        (
            "ledger-1",
            "ledger",
            "prod",
            "payments-team@demo.test",
            pki.leaf(&["ledger.demo.test"], -20, 340, true)?,
            ClientAuth::Required,
        ),
    ];
    for (hostname, app, env, owner, cert, client_auth) in situations {
        let address = servers::serve(cert, client_auth, &client_ca).await?;
        workloads.push(Workload {
            hostname,
            app,
            env,
            owner,
            address,
        });
    }

    let config = demo_config(&dir, &root_file)?;
    let roles = [Role::Api, Role::Prober, Role::Scheduler];
    let service = serve::start(&config, &roles, Some(args.listen.clone())).await?;
    let address = service
        .address
        .context("the demo's web server did not start")?;
    let token = service
        .store
        .create_agent_token(&AgentName::new("demo-agent")?)
        .await?;
    let sender = certfleet_agent::Sender::new(
        certfleet_agent::Client::new(&format!("http://{address}"), None, Duration::from_secs(10))?,
        certfleet_agent::Bearer::new("demo agent token", &token)?,
        certfleet_agent::RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
        },
        None,
    );
    for workload in &workloads {
        // The agent's wire format: gzip-compressed JSON.
        let json = serde_json::to_vec(&report(workload))?;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &json)?;
        let body = encoder.finish()?;
        let outcome = sender.deliver(&body).await;
        if let Some(error) = outcome.error {
            anyhow::bail!(
                "the demo agent could not report {}: {error}",
                workload.hostname
            );
        }
    }
    println!(
        "certfleet demo: {} TLS endpoints on 127.0.0.1, probed within seconds",
        workloads.len()
    );
    println!(
        "certfleet demo: notification emails go to {}",
        dir.join("outbox").display()
    );
    println!("certfleet demo: press Ctrl-C to stop; the dashboard is at");
    println!("http://{address}/");
    wait_for_signal().await;
    service.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn demo_config(dir: &Path, root: &Path) -> anyhow::Result<Config> {
    let database = dir.join("demo.db");
    let outbox = dir.join("outbox");
    let text = format!(
        r#"
[database]
url = "sqlite://{database}"
[probe]
allow = ["127.0.0.0/8"]
interval = "10m"
ca_files = ["{root}"]
[notify]
outbox_dir = "{outbox}"
interval = "5s"
from = "certfleet-demo@localhost"
default_owner = "security@demo.test"
"#,
        database = toml_path(&database),
        root = toml_path(root),
        outbox = toml_path(&outbox),
    );
    // The demo ignores CERTFLEET_* variables: it must not touch a real database.
    Config::from_parts(&text, Vec::<(String, String)>::new(), "demo")
}

fn toml_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

fn report(workload: &Workload) -> AgentReport {
    let tags: BTreeMap<String, String> = [
        ("app", workload.app),
        ("env", workload.env),
        ("owner", workload.owner),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    AgentReport {
        agent: AgentInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        collected_at: time::OffsetDateTime::now_utc(),
        host: HostInfo {
            hostname: workload.hostname.to_owned(),
            machine_id: format!("demo-{}", workload.hostname),
            addresses: vec![workload.address.ip()],
            tags,
            namespace_addresses: Vec::new(),
        },
        sockets: vec![SocketInfo {
            address: workload.address.ip(),
            port: workload.address.port(),
            protocol: Protocol::Tcp,
            netns: None,
            process: Some("certfleet-demo".to_owned()),
            container: None,
            tags: Default::default(),
            reachable: vec![workload.address.ip()],
            scope: SocketScope::Host,
        }],
        probes: Vec::new(),
    }
}
