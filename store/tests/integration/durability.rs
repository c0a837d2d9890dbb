//! SQLite durability: a commit (a report answered 202) survives power loss. The store runs
//! SQLite in WAL mode with `synchronous = FULL` on every connection of its pool, unless
//! `database.sqlite_synchronous = "normal"` chooses speed over it.

use std::sync::Arc;

use certfleet_store::{ManualClock, SqliteStore, SqliteSynchronous, StoreOptions};
use sqlx::pool::PoolConnection;
use sqlx::Sqlite;
use time::macros::datetime;

/// Opens a store on a fresh file with `options`, and reads `PRAGMA synchronous` and
/// `PRAGMA journal_mode` on three connections of its pool held at once.
async fn pragmas(options: StoreOptions) -> Vec<(i64, String)> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", directory.path().join("store.db").display());
    let store = SqliteStore::connect(&url, options)
        .await
        .expect("SQLite opens");
    let mut connections: Vec<PoolConnection<Sqlite>> = Vec::new();
    for _ in 0..3 {
        connections.push(store.pool().acquire().await.expect("a connection"));
    }
    let mut read = Vec::new();
    for connection in &mut connections {
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **connection)
            .await
            .expect("PRAGMA synchronous");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **connection)
            .await
            .expect("PRAGMA journal_mode");
        read.push((synchronous, journal));
    }
    read
}

fn options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        clock: Arc::new(ManualClock::new(datetime!(2026-11-27 10:00:00 UTC))),
        ..StoreOptions::default()
    }
}

/// `PRAGMA synchronous`: 1 is NORMAL, 2 is FULL.
const NORMAL: i64 = 1;
const FULL: i64 = 2;

#[tokio::test]
async fn sqlite_commits_are_flushed_to_disk_by_default() {
    let read = pragmas(options()).await;
    assert_eq!(read, vec![(FULL, "wal".to_owned()); 3]);
}

#[tokio::test]
async fn sqlite_synchronous_normal_is_kept_when_chosen() {
    let read = pragmas(StoreOptions {
        sqlite_synchronous: SqliteSynchronous::Normal,
        ..options()
    })
    .await;
    assert_eq!(read, vec![(NORMAL, "wal".to_owned()); 3]);
}
