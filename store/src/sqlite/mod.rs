//! The SQLite backend: the embedded default, one process, no other server.
//!
//! What is its own: times are Unix seconds; a batch is bound as one JSON array of rows and
//! read with `json_each`, so a batch of any size is one statement per table; every write
//! runs in `BEGIN IMMEDIATE`, which takes the write lock up front (waiting up to the busy
//! timeout) instead of failing when a read transaction would have to upgrade.
//!
//! Files run in WAL mode with `synchronous = FULL` unless the options choose `NORMAL`
//! ([`SqliteSynchronous`](crate::SqliteSynchronous)): a commit is on disk when it returns.

use std::str::FromStr;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use time::OffsetDateTime;

use crate::backend::{bind_all, Backend, Bound};
use crate::db::{Batch, Bind, Dialect, Query};
use crate::error::{Error, Result};
use crate::store::SqlStore;
use crate::StoreOptions;

/// A [`Store`](crate::Store) on SQLite; owns its connection pool.
pub type SqliteStore = SqlStore<SqlitePool>;

impl SqlStore<SqlitePool> {
    /// Opens (creating if missing) a `sqlite:` database: `sqlite://certfleet.db`,
    /// `sqlite:///abs/path.db`, or `sqlite::memory:` (one connection, gone on close).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|error| Error::invalid("database.url", error.to_string()))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        if !in_memory {
            let synchronous = match options.sqlite_synchronous {
                crate::SqliteSynchronous::Full => SqliteSynchronous::Full,
                crate::SqliteSynchronous::Normal => SqliteSynchronous::Normal,
            };
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous);
        }
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(options.max_connections)
        };
        SqlStore::open(pool_options, connect, options).await
    }
}

#[async_trait]
impl Backend for Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    const LOCKS_TO_WRITE: bool = true;
    const HEAVY_READ_SETTINGS: &'static [&'static str] = &[];

    /// Times are bound as Unix seconds, days as `YYYY-MM-DD`, lists as JSON arrays.
    fn bound(query: &Query) -> Result<Bound<'_, Sqlite>> {
        bind_all(query, |bound, bind| {
            Ok(match bind {
                Bind::Time(time) => bound.bind(time.unix_timestamp()),
                Bind::Date(date) => bound.bind(date.to_string()),
                Bind::Ints(ints) => bound.bind(serde_json::to_string(ints)?),
                Bind::Texts(texts) => bound.bind(serde_json::to_string(texts)?),
                Bind::Column(_) => {
                    return Err(Error::other(
                        "a batch column is bound by bind_batch on SQLite",
                    ))
                }
                // Bound alike on both backends, by `bind_all`.
                Bind::Text(_) | Bind::OptText(_) | Bind::Int(_) | Bind::Bytes(_) => bound,
            })
        })
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// One JSON array of rows: `(SELECT j.value ->> 0 AS a, ... FROM json_each($n) AS j)
    /// AS u`.
    fn bind_batch(query: &mut Query, batch: Batch) -> String {
        let rows: Vec<serde_json::Value> = (0..batch.len)
            .map(|index| {
                let row = batch
                    .columns
                    .iter()
                    .map(|(_, _, column)| column.json(index));
                serde_json::Value::Array(row.collect())
            })
            .collect();
        let placeholder = query.arg(Bind::Text(serde_json::Value::Array(rows).to_string()));
        let columns: Vec<String> = batch
            .columns
            .iter()
            .enumerate()
            .map(|(index, (name, _, _))| format!("j.value ->> {index} AS {name}"))
            .collect();
        format!(
            "(SELECT {} FROM json_each({placeholder}) AS j) AS u",
            columns.join(", ")
        )
    }

    fn opt_int(row: &SqliteRow, column: &str) -> Result<Option<i64>> {
        Ok(row.try_get(column)?)
    }

    /// Times are stored as Unix seconds.
    fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<OffsetDateTime>> {
        let Some(seconds) = row.try_get::<Option<i64>, _>(column)? else {
            return Ok(None);
        };
        OffsetDateTime::from_unix_timestamp(seconds)
            .map(Some)
            .map_err(|_| Error::bad_row(column, format!("time {seconds} out of range")))
    }

    /// JSON is stored as text.
    fn opt_json<T: DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<Option<T>> {
        let Some(text) = row.try_get::<Option<String>, _>(column)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| Error::bad_row(column, format!("not the JSON expected: {error}")))
    }

    /// Days are stored as `YYYY-MM-DD` text.
    fn date(row: &SqliteRow, column: &str) -> Result<time::Date> {
        let text: String = row.try_get(column)?;
        time::Date::parse(
            &text,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| Error::bad_row(column, format!("{text:?} is not a date")))
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrate(pool: &SqlitePool) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(pool)
            .await
            .map_err(|error| Error::Other(Box::new(error)))
    }
}
