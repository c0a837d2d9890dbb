//! [`Db`], [`Tx`] and [`ReadRow`] written once for any sqlx database that says, as a
//! [`Backend`], what it does its own way: how values are bound (times, days, lists,
//! batches), how the column types it stores differently are read, how a write
//! transaction begins, and its tuning and migrations. `pg` and `sqlite` are the two
//! `Backend`s.

use async_trait::async_trait;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use sqlx::pool::PoolOptions;
use sqlx::{
    ColumnIndex, Connection, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type,
};
use time::{Date, OffsetDateTime};

use crate::db::{Batch, Bind, Db, Dialect, Query, Tx};
use crate::error::Result;
use crate::rows::{self, ReadRow};
use crate::store::SqlStore;
use crate::StoreOptions;

impl<DB: Backend> SqlStore<Pool<DB>> {
    /// Opens the pool (one connection at once) and the store on it.
    pub(crate) async fn open(
        pool: PoolOptions<DB>,
        connect: <DB::Connection as Connection>::Options,
        options: StoreOptions,
    ) -> Result<Self> {
        let pool = pool
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(SqlStore::new(pool, options))
    }
}

/// A sqlx query of this backend, bound.
pub type Bound<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>;

/// A query with its values bound: text, integers and bytes alike on every backend, the
/// rest by `own`, the backend's way.
pub(crate) fn bind_all<'q, DB: sqlx::Database>(
    query: &'q Query,
    own: impl Fn(Bound<'q, DB>, &'q Bind) -> Result<Bound<'q, DB>>,
) -> Result<Bound<'q, DB>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::OptText(text) => bound.bind(text.as_deref()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Bytes(bytes) => bound.bind(bytes.as_slice()),
            other => own(bound, other)?,
        };
    }
    Ok(bound)
}

/// What one database does its own way.
#[async_trait]
pub trait Backend: sqlx::Database {
    /// Where its SQL differs.
    const DIALECT: Dialect;
    /// Whether a write of one statement runs in a write transaction (SQLite, to take the
    /// write lock up front) or on its own (PostgreSQL).
    const LOCKS_TO_WRITE: bool;
    /// Settings for the transaction of a heavy read (none: it runs on its own).
    const HEAVY_READ_SETTINGS: &'static [&'static str];

    /// The query with its values bound in this database's types.
    fn bound(query: &Query) -> Result<Bound<'_, Self>>;

    /// The rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Binds a batch to `query` and returns the table that reads it, `u`.
    fn bind_batch(query: &mut Query, batch: Batch) -> String;

    /// A nullable integer column of any width.
    fn opt_int(row: &Self::Row, column: &str) -> Result<Option<i64>>;

    /// A nullable time column.
    fn opt_time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>>;

    /// A nullable JSON column.
    fn opt_json<T: DeserializeOwned>(row: &Self::Row, column: &str) -> Result<Option<T>>;

    /// A date column.
    fn date(row: &Self::Row, column: &str) -> Result<Date>;

    /// Begins a write transaction.
    async fn begin(pool: &Pool<Self>) -> Result<Transaction<'static, Self>>;

    /// Applies the embedded migrations not applied yet.
    async fn migrate(pool: &Pool<Self>) -> Result<()>;
}

#[async_trait]
impl<DB: Backend> Db for Pool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Row: ReadRow + Send + Sync,
{
    type Row = DB::Row;
    type Tx = Transaction<'static, DB>;
    const DIALECT: Dialect = DB::DIALECT;

    async fn rows(&self, query: &Query) -> Result<Vec<DB::Row>> {
        Ok(DB::bound(query)?.fetch_all(self).await?)
    }

    async fn row(&self, query: &Query, what: &'static str) -> Result<DB::Row> {
        DB::bound(query)?
            .fetch_one(self)
            .await
            .map_err(|error| rows::not_found_as(what, error))
    }

    async fn heavy_read<T, F>(&self, query: &Query, read: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(&DB::Row) -> Result<T> + Send + Sync,
    {
        let mut transaction = DB::begin(self).await?;
        for setting in DB::HEAVY_READ_SETTINGS {
            transaction.execute(&crate::db::plain(*setting)).await?;
        }
        let mut read_rows = Vec::new();
        {
            let mut rows = DB::bound(query)?.fetch(&mut *transaction);
            while let Some(row) = rows.try_next().await? {
                read_rows.push(read(&row)?);
            }
        }
        Tx::commit(transaction).await?;
        Ok(read_rows)
    }

    async fn begin(&self) -> Result<Self::Tx> {
        DB::begin(self).await
    }

    async fn write_rows(&self, query: &Query) -> Result<Vec<DB::Row>> {
        if !DB::LOCKS_TO_WRITE {
            return self.rows(query).await;
        }
        let mut transaction = DB::begin(self).await?;
        let rows = transaction.rows(query).await?;
        Tx::commit(transaction).await?;
        Ok(rows)
    }

    async fn write(&self, query: &Query) -> Result<u64> {
        if !DB::LOCKS_TO_WRITE {
            let result = DB::bound(query)?.execute(self).await?;
            return Ok(DB::rows_affected(&result));
        }
        let mut transaction = DB::begin(self).await?;
        let changed = transaction.execute(query).await?;
        Tx::commit(transaction).await?;
        Ok(changed)
    }

    fn bind_batch(query: &mut Query, batch: Batch) -> String {
        DB::bind_batch(query, batch)
    }

    async fn migrate(&self) -> Result<()> {
        DB::migrate(self).await
    }
}

#[async_trait]
impl<DB: Backend> Tx for Transaction<'static, DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Row: ReadRow + Send + Sync,
{
    type Row = DB::Row;

    async fn rows(&mut self, query: &Query) -> Result<Vec<DB::Row>> {
        Ok(DB::bound(query)?.fetch_all(&mut **self).await?)
    }

    async fn execute(&mut self, query: &Query) -> Result<u64> {
        let result = DB::bound(query)?.execute(&mut **self).await?;
        Ok(DB::rows_affected(&result))
    }

    async fn commit(self) -> Result<()> {
        Ok(Transaction::commit(self).await?)
    }
}

/// Text, booleans and bytes read the same on both; the rest as the backend says.
impl<R> ReadRow for R
where
    R: sqlx::Row,
    R::Database: Backend<Row = R>,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn opt_bool(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        R::Database::opt_int(self, column)
    }

    fn opt_time(&self, column: &str) -> Result<Option<OffsetDateTime>> {
        R::Database::opt_time(self, column)
    }

    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>> {
        R::Database::opt_json(self, column)
    }

    fn date(&self, column: &str) -> Result<Date> {
        R::Database::date(self, column)
    }
}
