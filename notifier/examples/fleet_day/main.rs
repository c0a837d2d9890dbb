//! The driver of bench/fleet-day.sh: the seed fleet's day on one PostgreSQL, end to end,
//! through the store's real write and read paths (no seeding by SQL).
//!
//! Each simulated day (the store's clock is moved, nothing sleeps): every host reports;
//! the due endpoints are leased and their (synthetic) probe results recorded through the
//! real record path; every host reports again later that day with a tenth of its sockets
//! moved, and the new endpoints are probed; notifications are decided and sent (digest
//! files on tmpfs); the overview and 1,000 hostname and 1,000 serial lookups run; retention
//! runs. Each stage prints its wall time and rate, each day the database's size; then the
//! invariants are checked (checks.rs).
//!
//! `cargo run --release -p certfleet-notifier --example fleet_day -- \
//!     --postgres URL [--scale 0.01] [--days 3] [--retention-days 1] [--outbox DIR]`

mod checks;
mod fleet;
mod stages;

use std::str::FromStr;
use std::sync::Arc;

use certfleet_store::{ManualClock, PostgresStore, ReadModel, StoreOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use time::{Duration, OffsetDateTime};

use checks::Checks;
use fleet::Fleet;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Args {
    pub postgres: String,
    pub scale: f64,
    pub days: u32,
    pub retention_days: u32,
    pub outbox: std::path::PathBuf,
    pub keep: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        scale: 0.01,
        days: 3,
        retention_days: 1,
        outbox: std::env::temp_dir().join("certfleet-fleet-day"),
        keep: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--keep" {
            args.keep = true;
            continue;
        }
        let value = words.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--postgres" => args.postgres = value,
            "--scale" => args.scale = value.parse().map_err(|_| "--scale: a number")?,
            "--days" => args.days = value.parse().map_err(|_| "--days: a number")?,
            "--retention-days" => {
                args.retention_days = value.parse().map_err(|_| "--retention-days")?
            }
            "--outbox" => args.outbox = value.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !(args.scale > 0.0 && args.scale <= 10.0) || args.days == 0 {
        return Err("--scale must be in (0, 10] and --days at least 1".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = args()?;
    let admin = PgConnectOptions::from_str(&args.postgres)?;
    let name = format!("certfleet_fleet_day_{}", std::process::id());
    let mut connection = admin.connect().await?;
    connection
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let url = admin.clone().database(&name).to_url_lossy().to_string();
    let outcome = run(&args, &url).await;
    if args.keep {
        println!("kept database {name}");
    } else {
        connection
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
    }
    let checks = outcome?;
    println!("{} passed, {} failed", checks.passed, checks.failed.len());
    for failure in &checks.failed {
        println!("FAILED: {failure}");
    }
    if checks.failed.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

async fn run(args: &Args, url: &str) -> Result<Checks, Error> {
    let fleet = Fleet::at_scale(args.scale);
    println!(
        "fleet: {} hosts, {} sockets, {} new certificates a day, {} apps; {} days; retention \
         windows {} day(s)",
        fleet.hosts,
        fleet.sockets(),
        fleet.certificates_per_day,
        fleet.apps,
        args.days,
        args.retention_days
    );
    // Midnight, so that day N starts at a round time; the clock only moves forward.
    let start = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let clock = ManualClock::new(start);
    // Every endpoint probed once a day: whether probed at 02:00 (the first record stage)
    // or at 13:00 (the moved sockets), it is due again by the next day's 02:00 and not
    // before 13:00 the same day.
    let schedule = certfleet_store::ProbeSchedule {
        interval: Duration::hours(12),
        min_interval: Duration::hours(12),
        jitter: 0.0,
        ..Default::default()
    };
    let options = StoreOptions {
        max_connections: 16,
        acquire_timeout: std::time::Duration::from_secs(60),
        schedule,
        clock: Arc::new(clock.clone()),
        // Names revealed by certificates would each become one more endpoint to probe;
        // the day measured here is the sockets the agents report.
        present_names: false,
        ..StoreOptions::default()
    };
    let store = Arc::new(PostgresStore::connect(url, options).await?);
    store.migrate().await?;
    let mut checks = Checks::default();
    let mut sizes = Vec::new();
    let mut rotations = Vec::new();
    for day in 1..=args.days {
        clock.set(start + Duration::days(i64::from(day - 1)));
        println!("--- day {day}");
        let day_stages = stages::Day {
            fleet,
            day,
            store: store.clone(),
            clock: clock.clone(),
            args,
        };
        let started = std::time::Instant::now();
        day_stages.run(&mut checks).await?;
        let (size, rotations_size) = database_size(&store).await?;
        rotations.push(rotations_size);
        println!(
            "day {day}: {:.1} s in all; database {:.0} MiB",
            started.elapsed().as_secs_f64(),
            size
        );
        sizes.push(size);
    }
    let line: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(day, size)| format!("day {} {size:.0} MiB", day + 1))
        .collect();
    println!("storage: {}", line.join(", "));
    checks.storage_flat(&sizes, &rotations);
    Ok(checks)
}

/// The database's size and the `rotations` table's, in MiB.
async fn database_size(store: &PostgresStore) -> Result<(f64, f64), Error> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(store.pool())
        .await?;
    // Where the space is: the largest tables with their indexes, so that a day that grows
    // names what grew.
    let largest: Vec<(String, i64)> = sqlx::query_as(
        "SELECT relname::text, pg_total_relation_size(oid) FROM pg_class \
         WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace \
         ORDER BY 2 DESC LIMIT 6",
    )
    .fetch_all(store.pool())
    .await?;
    let largest: Vec<String> = largest
        .iter()
        .map(|(table, size)| format!("{table} {:.1}", *size as f64 / (1024.0 * 1024.0)))
        .collect();
    println!("largest tables, MiB: {}", largest.join(", "));
    let rotations: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('rotations')")
        .fetch_one(store.pool())
        .await?;
    let mib = |bytes: i64| bytes as f64 / (1024.0 * 1024.0);
    Ok((mib(bytes), mib(rotations)))
}
