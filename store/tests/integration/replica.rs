//! Read routing of [`Replicated`]: two real PostgreSQL pools, the primary and a "replica"
//! that is another database on the test server (so that what a read returns says which
//! one answered), and a replica reached through a TCP relay the test can cut. Real
//! streaming replication and its lag: `tests/system/serve/read_replica.rs`.

use std::sync::Arc;
use std::time::Duration;

use certfleet_store::{
    EndpointSearch, IngestStore, PostgresStore, ProbeQueue, ReadModel, ReplicaOptions, Replicated,
    StoreOptions,
};
use certfleet_testkit::postgres::ScratchDatabase;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::fixtures::{agent, certificate, no_mtls, probe_ok, report, socket};

fn options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        ..StoreOptions::default()
    }
}

async fn open(database: &ScratchDatabase) -> PostgresStore {
    let store = PostgresStore::connect(&database.url, options())
        .await
        .expect("PostgreSQL opens");
    store.migrate().await.expect("PostgreSQL migrates");
    store
}

/// Endpoints a read finds, whichever database answered it.
async fn endpoints(reads: &dyn ReadModel) -> usize {
    let search = EndpointSearch {
        limit: 100,
        ..EndpointSearch::default()
    };
    reads.search_endpoints(&search).await.expect("read").len()
}

async fn snapshots(store: &PostgresStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM mtls_snapshots")
        .fetch_one(store.pool())
        .await
        .expect("count the snapshots")
}

/// One endpoint reported and probed, so that the mTLS snapshot has a row to write.
async fn report_one_endpoint(primary: &PostgresStore) {
    let now = OffsetDateTime::now_utc();
    let report = report("host-1", &[], vec![socket("10.0.0.5", 443)], now);
    primary
        .ingest_report(&agent(), &report)
        .await
        .expect("report");
    let leased = primary
        .lease_due_endpoints("w", 10, time::Duration::minutes(5))
        .await
        .expect("lease");
    let leaf = certificate(
        1,
        &["a.example"],
        "CN=a.example",
        now + time::Duration::days(90),
    );
    let result = probe_ok(vec![leaf], no_mtls(), now);
    primary
        .record_probe_results(&[(leased[0].id, result)])
        .await
        .expect("record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_once_it_is_checked_and_upkeep_to_the_primary() {
    let (primary_db, replica_db) = (
        ScratchDatabase::create("replica_primary").await,
        ScratchDatabase::create("replica_copy").await,
    );
    let (primary, replica) = (open(&primary_db).await, open(&replica_db).await);
    report_one_endpoint(&primary).await;
    let on_primary = endpoints(&primary).await;
    assert!(on_primary > 0);
    let replicated = Replicated::new(
        primary.clone(),
        replica.clone(),
        ReplicaOptions::new(Duration::from_secs(30)),
    );

    // Unchecked, the replica serves no read: the primary answers, counted.
    assert!(!replicated.status().serves_reads());
    assert_eq!(endpoints(&replicated).await, on_primary);
    assert_eq!(replicated.status().fallback_reads, 1);

    // Checked (same server, so caught up), reads go to the replica: the empty database.
    let status = replicated.check().await;
    assert!(status.up && status.serves_reads(), "{status:?}");
    assert!(status.lag.is_some_and(|lag| lag < Duration::from_secs(30)));
    assert_eq!(endpoints(&replicated).await, 0);
    assert_eq!(replicated.status().fallback_reads, 1);

    // The snapshot writes, so it goes to the primary, as does readiness.
    assert!(replicated.snapshot_mtls_adoption().await.expect("snapshot") > 0);
    assert!(snapshots(&primary).await > 0);
    assert_eq!(snapshots(&replica).await, 0);
    replicated.ping().await.expect("the primary answers");
    replicated
        .migrate()
        .await
        .expect("migrations run on the primary");

    primary.pool().close().await;
    replica.pool().close().await;
    primary_db.drop_now().await;
    replica_db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_answering_leaves_reads_to_the_primary() {
    let (primary_db, replica_db) = (
        ScratchDatabase::create("replica_primary").await,
        ScratchDatabase::create("replica_copy").await,
    );
    let primary = open(&primary_db).await;
    open(&replica_db).await.pool().close().await;
    report_one_endpoint(&primary).await;
    let on_primary = endpoints(&primary).await;
    assert!(on_primary > 0);
    let relay = Relay::start(&replica_db.url).await;
    let replica = PostgresStore::connect(&relay.url, options())
        .await
        .expect("the replica opens through the relay");
    let replicated = Replicated::new(
        primary.clone(),
        replica.clone(),
        ReplicaOptions::new(Duration::from_secs(30)),
    );
    assert!(replicated.check().await.serves_reads());
    assert_eq!(endpoints(&replicated).await, 0, "the replica answers");

    // Cut: the next read fails on the replica, is asked again of the primary, and the
    // replica counts as down until a check finds it back.
    relay.cut();
    assert_eq!(
        endpoints(&replicated).await,
        on_primary,
        "the primary answers"
    );
    let status = replicated.status();
    assert!(!status.up, "{status:?}");
    assert_eq!(status.fallback_reads, 1);
    assert!(!replicated.check().await.up);
    assert_eq!(endpoints(&replicated).await, on_primary);
    assert_eq!(replicated.status().fallback_reads, 2);

    replica.pool().close().await;
    primary.pool().close().await;
    primary_db.drop_now().await;
    replica_db.drop_now().await;
}

#[tokio::test]
async fn a_replica_needs_postgresql_on_both_sides() {
    let options = || StoreOptions::default();
    let replica = ReplicaOptions::new(Duration::from_secs(30));
    for (url, read_url) in [
        ("sqlite::memory:", "postgres://127.0.0.1:1/x"),
        ("postgres://127.0.0.1:1/x", "sqlite::memory:"),
        ("postgres://127.0.0.1:1/x", "mysql://127.0.0.1/x"),
    ] {
        let opened = certfleet_store::connect_with_replica(url, read_url, options(), replica);
        let error = opened.await.expect_err("refused");
        assert!(
            error.to_string().starts_with("invalid database.read_url"),
            "{url} {read_url}: {error}"
        );
    }
}

/// A TCP relay to the test server's port, so that the test can cut the replica off.
struct Relay {
    url: String,
    tasks: std::sync::Mutex<JoinSet<()>>,
}

impl Relay {
    async fn start(target_url: &str) -> Arc<Relay> {
        let target: url_parts::Target = url_parts::parse(target_url);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let url = target_url.replacen(&target.authority, &format!("127.0.0.1:{port}"), 1);
        let relay = Arc::new(Relay {
            url,
            tasks: std::sync::Mutex::new(JoinSet::new()),
        });
        let connections = Arc::downgrade(&relay);
        let upstream = target.address;
        relay.tasks.lock().expect("lock").spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(relay) = connections.upgrade() else {
                    return;
                };
                let upstream = upstream.clone();
                relay.tasks.lock().expect("lock").spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        relay
    }

    /// Stops listening and drops every relayed connection.
    fn cut(&self) {
        self.tasks.lock().expect("lock").abort_all();
    }
}

/// Where a `postgres://user@host:port/db` URL points.
mod url_parts {
    pub struct Target {
        /// `host:port` as written in the URL.
        pub authority: String,
        /// `host:port` to connect to.
        pub address: String,
    }

    pub fn parse(url: &str) -> Target {
        let rest = url.split_once("://").expect("a URL").1;
        let authority = rest.split('/').next().expect("an authority");
        let authority = authority.rsplit('@').next().expect("a host").to_owned();
        let address = if authority.contains(':') {
            authority.clone()
        } else {
            format!("{authority}:5432")
        };
        Target { authority, address }
    }
}
