//! The driver of bench/notify.sh: seeds a fresh PostgreSQL database with generate_series
//! (certificates, hosts, endpoints, observations, chains), then measures
//!
//! 1. deciding what is due over all of them (candidates, ownership, levels), best of 3;
//! 2. one full run (claim, then one digest per owner to a local SMTP server): messages
//!    per second.
//!
//! With `--webhook URL`, a webhook serving every owner (json, signed) is told too: the
//! first run then also posts every due certificate to it, in parts of 1,000.
//!
//! `cargo run --release -p certfleet-notifier --example notify_bench -- \
//!     --postgres URL --smtp smtp://127.0.0.1:PORT [--certificates N] [--owners N] [--keep yes]
//!     [--webhook http://127.0.0.1:PORT/]`

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use certfleet_notifier::{
    Delivery, Notifier, OwnerRule, OwnerRules, Settings, Webhook, WebhookSpec,
};
use certfleet_store::{PostgresStore, ReadModel, Store, StoreOptions, SystemClock};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

struct Args {
    postgres: String,
    smtp: String,
    certificates: i64,
    owners: i64,
    webhook: Option<String>,
    /// Leave the seeded database behind (named on the first line) to look into its plans.
    keep: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        smtp: String::new(),
        certificates: 1_000_000,
        owners: 7_000,
        webhook: None,
        keep: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--postgres" => args.postgres = value,
            "--smtp" => args.smtp = value,
            "--certificates" => args.certificates = value.parse().map_err(|_| "--certificates")?,
            "--owners" => args.owners = value.parse().map_err(|_| "--owners")?,
            "--webhook" => args.webhook = Some(value),
            "--keep" => args.keep = value == "yes",
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.smtp.is_empty() {
        return Err("--smtp smtp://127.0.0.1:PORT is required".into());
    }
    Ok(args)
}

/// Certificates expire from 10 days ago to 365 days ahead, evenly; one endpoint serves
/// each (with the copy of its leaf's SHA-256 and expiry that the probe write path keeps). Two thirds of the endpoints carry an owner tag (one of `owners` teams), the rest
/// are owned through a rule on their app tag or fall to the default owner.
const SEED: &str = "
INSERT INTO hosts (id, host_key, hostname, machine_id, agent, agent_version, addresses, tags,
                   collected_at, first_seen, last_seen)
SELECT h, 'm' || h, 'host-' || h, 'm' || h, 'bench', '0.1.0', '[]', '{}', $1, $1, $1
FROM generate_series(1, GREATEST($2 / 100, 1)) h;

INSERT INTO certificates (sha256, serial, subject, issuer, not_before, not_after, sans,
                          key_type, key_bits, key_curve, signature_algorithm, is_ca,
                          self_signed, first_seen, last_seen)
SELECT lpad(to_hex(i), 64, '0'), to_hex(i), 'CN=svc' || i || '.example.com,O=Example',
       'CN=Bench Issuing CA,O=Example', $1 - interval '300 days',
       $1 + (i % 375 - 10) * interval '1 day' + (i % 86400) * interval '1 second',
       jsonb_build_array('svc' || i || '.example.com'), 'ecdsa', 256, 'P-256',
       'ecdsa-with-SHA256', false, false, $1, $1
FROM generate_series(1, $2) i;

INSERT INTO endpoints (id, address, port, sni, host_id, app, env, owner, first_seen, last_seen,
                       next_probe_at, observation_id, leaf_sha256, leaf_not_after)
SELECT i, '10.' || (i >> 16 & 255) || '.' || (i >> 8 & 255) || '.' || (i & 255),
       443 + (i >> 24), '', 1 + i % GREATEST($2 / 100, 1), 'app' || i % $3, 'prod',
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'team' || i % $3 || '@example.com' END,
       $1, $1, $1 + interval '1 day', i, lpad(to_hex(i), 64, '0'),
       $1 + (i % 375 - 10) * interval '1 day' + (i % 86400) * interval '1 second'
FROM generate_series(1, $2) i;

INSERT INTO observations (id, endpoint_id, fingerprint, status, leaf_sha256, legacy,
                          mtls_requested, ca_names, findings, first_seen, last_seen)
SELECT i, i, 'f' || i, 'ok', lpad(to_hex(i), 64, '0'), false, false, '[]', '[]', $1, $1
FROM generate_series(1, $2) i;

INSERT INTO observation_chain (observation_id, position, sha256)
SELECT i, 0, lpad(to_hex(i), 64, '0') FROM generate_series(1, $2) i;
";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let admin = PgConnectOptions::from_str(&args.postgres)?;
    let name = format!("certfleet_notify_bench_{}", std::process::id());
    let mut connection = admin.connect().await?;
    connection
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let url = admin.clone().database(&name).to_url_lossy().to_string();
    let outcome = bench(&args, &url).await;
    if args.keep {
        println!("database {name} kept");
        return outcome;
    }
    connection
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    outcome
}

async fn bench(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = PostgresStore::connect(url, StoreOptions::default()).await?;
    store.migrate().await?;
    let seeding = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    for statement in SEED.split(";\n").filter(|s| !s.trim().is_empty()) {
        let statement = statement.replace("$3", &args.owners.to_string());
        let statement = statement.replace("$2", &args.certificates.to_string());
        sqlx::query(&statement)
            .bind(now)
            .execute(store.pool())
            .await?;
    }
    store.pool().execute("ANALYZE").await?;
    println!(
        "seeded {} certificates, endpoints and observations in {:.1} s",
        args.certificates,
        seeding.elapsed().as_secs_f64()
    );
    let store: Arc<dyn Store> = Arc::new(store);
    let rules = (0..100)
        .map(|app| OwnerRule {
            app: Some(format!("app{app}")),
            email: format!("app{app}-owners@example.com"),
            ..OwnerRule::default()
        })
        .collect();
    let webhooks = match &args.webhook {
        Some(url) => vec![Webhook::new(
            0,
            WebhookSpec {
                name: Some("bench".into()),
                url: url.clone(),
                format: "json".into(),
                secret: "bench-secret".into(),
                ..WebhookSpec::default()
            },
        )?],
        None => Vec::new(),
    };
    let settings = Settings {
        delivery: Delivery::Smtp(args.smtp.clone()),
        concurrency: 16,
        webhooks,
        ..Settings::new(OwnerRules::new(rules, "security@example.com")?)
    };
    let notifier = Notifier::new(store.clone(), settings, Arc::new(SystemClock))?;

    let started = Instant::now();
    let deadline = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let rows = store.notification_candidates(deadline).await?.len();
    println!(
        "candidates query alone: {:.3} s ({rows} rows)",
        started.elapsed().as_secs_f64()
    );
    let mut best = f64::MAX;
    for round in 1..=3 {
        let started = Instant::now();
        let (decision, candidates) = notifier.decide().await?;
        let seconds = started.elapsed().as_secs_f64();
        best = best.min(seconds);
        println!(
            "decide round {round}: {seconds:.3} s ({candidates} candidates in the window, \
             {} (certificate, owner) pairs due)",
            decision.claims().len()
        );
    }
    println!(
        "DECIDE: {best:.3} s over {} certificates (goal < 2 s)",
        args.certificates
    );

    let transport = 1_000;
    let started = Instant::now();
    let sends = futures::stream::iter(0..transport)
        .map(|n| {
            let notifier = &notifier;
            async move { notifier.send_test(&format!("bench{n}@example.com")).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let failed = sends.iter().filter(|sent| sent.is_err()).count();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "SEND (transport): {:.0} messages/s ({transport} test messages, 16 in flight, {failed} \
         failed; goal >= 100/s)",
        f64::from(transport) / seconds
    );

    let started = Instant::now();
    let report = notifier.run_once().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "first run: {} claimed, {} digests sent ({} notifications), {} failed in {seconds:.1} s",
        report.claimed,
        report.digests_sent,
        report.notifications_sent,
        report.failures.len()
    );
    if let Some(failure) = report.failures.first() {
        println!("first failure: {}: {}", failure.owner, failure.error);
    }
    println!(
        "SEND (first run): {:.0} digests/s (goal >= 100/s; the whole run: decide, claim, \
         render, send, record)",
        report.digests_sent as f64 / seconds
    );
    Ok(())
}
