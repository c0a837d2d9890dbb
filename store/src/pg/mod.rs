//! The PostgreSQL backend: for production and for many probers and API replicas sharing
//! one database. What is its own: batches bind whole columns as arrays and `UNNEST` them,
//! times are `timestamptz`, one-statement writes run without a transaction, leases use
//! `FOR UPDATE SKIP LOCKED` (the lease SQL is in [`crate::write`], by dialect), and the
//! heavy notification read runs with JIT compilation off.

use std::str::FromStr;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;

use crate::backend::{bind_all, Backend, Bound};
use crate::db::{Batch, Bind, Column, Dialect, Query};
use crate::error::{Error, Result};
use crate::store::SqlStore;
use crate::StoreOptions;

/// A [`Store`](crate::Store) on PostgreSQL; owns its connection pool.
pub type PostgresStore = SqlStore<PgPool>;

impl SqlStore<PgPool> {
    /// Connects to a `postgres://` URL (the pool is created and one connection opened).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| Error::invalid("database.url", error.to_string()))?;
        let pool = PgPoolOptions::new().max_connections(options.max_connections);
        SqlStore::open(pool, connect, options).await
    }
}

#[async_trait]
impl Backend for Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    const LOCKS_TO_WRITE: bool = false;
    /// JIT compilation costs more than it saves on these plans (a quarter of a second at
    /// a million endpoints for the notification candidates), so it is off for the one
    /// transaction of such a read. Its hash joins get 32 MB instead of the default 4 MB:
    /// at a million endpoints the due ones (35,000 rows per worker) spilled to disk in 8
    /// batches, and the candidates query took 0.75 s instead of 0.56 to 0.62 s.
    const HEAVY_READ_SETTINGS: &'static [&'static str] =
        &["SET LOCAL jit = off", "SET LOCAL work_mem = '32MB'"];

    /// Times as `timestamptz`, days as `date`, lists and batch columns as arrays.
    fn bound(query: &Query) -> Result<Bound<'_, Postgres>> {
        bind_all(query, |bound, bind| {
            Ok(match bind {
                Bind::Time(time) => bound.bind(*time),
                Bind::Date(date) => bound.bind(*date),
                Bind::Ints(ints) => bound.bind(ints.as_slice()),
                Bind::Texts(texts) => bound.bind(texts.as_slice()),
                Bind::Column(Column::Text(values)) => {
                    bound.bind(values.iter().collect::<Vec<Option<&str>>>())
                }
                Bind::Column(Column::Int(values)) => bound.bind(values.as_slice()),
                Bind::Column(Column::Int4(values)) => bound.bind(values.as_slice()),
                Bind::Column(Column::Bool(values)) => bound.bind(values.as_slice()),
                Bind::Column(Column::Time(values)) => bound.bind(values.as_slice()),
                // Bound alike on both backends, by `bind_all`.
                Bind::Text(_) | Bind::OptText(_) | Bind::Int(_) | Bind::Bytes(_) => bound,
            })
        })
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// One array per column: `UNNEST($a::text[], $b::int4[], ...) AS u(a, b, ...)`.
    fn bind_batch(query: &mut Query, batch: Batch) -> String {
        let names = batch.names();
        let arrays: Vec<String> = batch
            .columns
            .into_iter()
            .map(|(_, sql_type, column)| {
                format!("{}::{sql_type}[]", query.arg(Bind::Column(column)))
            })
            .collect();
        format!("UNNEST({}) AS u({names})", arrays.join(", "))
    }

    /// INTEGER columns are `int4` and counts `int8`; both read as `i64`.
    fn opt_int(row: &PgRow, column: &str) -> Result<Option<i64>> {
        match row.try_get::<Option<i64>, _>(column) {
            Ok(value) => Ok(value),
            Err(_) => Ok(row.try_get::<Option<i32>, _>(column)?.map(i64::from)),
        }
    }

    fn opt_time(row: &PgRow, column: &str) -> Result<Option<OffsetDateTime>> {
        Ok(row.try_get(column)?)
    }

    fn opt_json<T: DeserializeOwned>(row: &PgRow, column: &str) -> Result<Option<T>> {
        let value: Option<Json<T>> = row.try_get(column)?;
        Ok(value.map(|Json(value)| value))
    }

    fn date(row: &PgRow, column: &str) -> Result<time::Date> {
        Ok(row.try_get(column)?)
    }

    async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    async fn migrate(pool: &PgPool) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(pool)
            .await
            .map_err(|error| Error::Other(Box::new(error)))
    }
}
