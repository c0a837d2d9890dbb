//! The PostgreSQL backend: for production and for many probers and API replicas sharing
//! one database. What is its own: batches bind whole columns as arrays and `UNNEST` them,
//! times are `timestamptz`, one-statement writes run without a transaction, leases use
//! `FOR UPDATE SKIP LOCKED` (the lease SQL is in [`crate::write`], by dialect), and the
//! heavy notification read runs with JIT compilation off.

use std::str::FromStr;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;

use crate::db::{Batch, Bind, Column, Db, Dialect, Query, Tx};
use crate::error::{Error, Result};
use crate::rows::{self, ReadRow};
use crate::store::SqlStore;
use crate::StoreOptions;

/// A [`Store`](crate::Store) on PostgreSQL; owns its connection pool.
pub type PostgresStore = SqlStore<PgPool>;

impl SqlStore<PgPool> {
    /// Connects to a `postgres://` URL (the pool is created and one connection opened).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|error| Error::invalid("database.url", error.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(SqlStore::new(pool, options))
    }
}

fn bound(query: &Query) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::OptText(text) => bound.bind(text.as_deref()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Time(time) => bound.bind(*time),
            Bind::Date(date) => bound.bind(*date),
            Bind::Bytes(bytes) => bound.bind(bytes.as_slice()),
            Bind::Ints(ints) => bound.bind(ints.as_slice()),
            Bind::Texts(texts) => bound.bind(texts.as_slice()),
            Bind::Column(Column::Text(values)) => bound.bind(values.as_slice()),
            Bind::Column(Column::Int(values)) => bound.bind(values.as_slice()),
            Bind::Column(Column::Bool(values)) => bound.bind(values.as_slice()),
            Bind::Column(Column::Time(values)) => bound.bind(values.as_slice()),
        };
    }
    bound
}

#[async_trait]
impl Db for PgPool {
    type Row = PgRow;
    type Tx = Transaction<'static, Postgres>;
    const DIALECT: Dialect = Dialect::Postgres;

    async fn rows(&self, query: &Query) -> Result<Vec<PgRow>> {
        Ok(bound(query).fetch_all(self).await?)
    }

    async fn row(&self, query: &Query, what: &'static str) -> Result<PgRow> {
        bound(query)
            .fetch_one(self)
            .await
            .map_err(|error| rows::not_found_as(what, error))
    }

    /// JIT compilation costs more than it saves on these plans (a quarter of a second at
    /// a million endpoints for the notification candidates), so it is off for this one
    /// transaction.
    async fn heavy_rows(&self, query: &Query) -> Result<Vec<PgRow>> {
        let mut transaction = self.begin().await?;
        sqlx::query("SET LOCAL jit = off")
            .execute(&mut *transaction)
            .await?;
        let rows = transaction.rows(query).await?;
        transaction.commit().await?;
        Ok(rows)
    }

    async fn begin(&self) -> Result<Self::Tx> {
        Ok(PgPool::begin(self).await?)
    }

    async fn write_rows(&self, query: &Query) -> Result<Vec<PgRow>> {
        self.rows(query).await
    }

    async fn write(&self, query: &Query) -> Result<u64> {
        Ok(bound(query).execute(self).await?.rows_affected())
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

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(self)
            .await
            .map_err(|error| Error::Other(Box::new(error)))
    }
}

#[async_trait]
impl Tx for Transaction<'static, Postgres> {
    type Row = PgRow;

    async fn rows(&mut self, query: &Query) -> Result<Vec<PgRow>> {
        Ok(bound(query).fetch_all(&mut **self).await?)
    }

    async fn execute(&mut self, query: &Query) -> Result<u64> {
        Ok(bound(query).execute(&mut **self).await?.rows_affected())
    }

    async fn commit(self) -> Result<()> {
        Ok(Transaction::commit(self).await?)
    }
}

impl ReadRow for PgRow {
    fn date(&self, column: &str) -> Result<time::Date> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?
            .ok_or_else(|| Error::other(format!("column {column} is unexpectedly NULL")))
    }

    /// INTEGER columns are `int4` and counts `int8`; both read as `i64`.
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self.try_get::<Option<i64>, _>(column) {
            Ok(value) => Ok(value),
            Err(_) => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn opt_bool(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        Ok(self.try_get(column)?)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        let value: Option<Json<T>> = self.try_get(column)?;
        Ok(value.map(|Json(value)| value))
    }
}
