//! What the two backends share: a pool that runs a [`Query`] (SQL text with `$n`
//! placeholders and its [`Bind`] values) and hands back rows read with [`ReadRow`]. Code
//! that differs between PostgreSQL and SQLite only in types is written once against
//! [`Db`] (the read model, [`crate::read_model`]); what really differs (batch binding,
//! time types, write locking, tuning) stays in `pg` and `sqlite`.

use async_trait::async_trait;
use certfleet_model::Finding;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use time::OffsetDateTime;

use crate::browse::MtlsState;
use crate::error::Result;
use crate::rows::{self, ReadRow};

/// Where the two SQL dialects differ for these queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// A value to bind, in the order of the `$n` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Time(OffsetDateTime),
}

/// SQL text and its arguments.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Query {
    /// Adds an argument; returns its placeholder.
    pub(crate) fn arg(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }
}

impl Dialect {
    /// True when observation `o` has `finding`. The same text as the partial index of
    /// migration 20260401000001, so the planner uses it (the name is a fixed literal).
    pub fn finding(self, finding: Finding) -> String {
        match self {
            Dialect::Postgres => format!("o.findings ? '{}'", finding.as_str()),
            Dialect::Sqlite => format!("instr(o.findings, '\"{}\"') > 0", finding.as_str()),
        }
    }

    /// A clause that keeps a subquery from being merged into the query around it, so that
    /// a column it computes (the per-socket subquery `rep`) is computed once per row, not
    /// once per use: merged, PostgreSQL ran it for each of the 20 sums that read it, and
    /// the first overview at 3,000,000 endpoints (three per socket) took 166 s.
    pub fn fence(self) -> &'static str {
        match self {
            Dialect::Postgres => " OFFSET 0",
            Dialect::Sqlite => " LIMIT -1",
        }
    }

    /// True when observation `o` has this client-certificate policy.
    pub fn mtls(self, state: MtlsState) -> &'static str {
        match (self, state) {
            (Dialect::Postgres, MtlsState::Required) => {
                "o.mtls_requested AND o.mtls_required IS TRUE"
            }
            (Dialect::Postgres, MtlsState::Optional) => {
                "o.mtls_requested AND o.mtls_required IS NOT TRUE"
            }
            (Dialect::Postgres, MtlsState::None) => "NOT o.mtls_requested",
            (Dialect::Sqlite, MtlsState::Required) => {
                "o.mtls_requested = 1 AND o.mtls_required = 1"
            }
            (Dialect::Sqlite, MtlsState::Optional) => {
                "o.mtls_requested = 1 AND o.mtls_required IS NOT 1"
            }
            (Dialect::Sqlite, MtlsState::None) => "o.mtls_requested = 0",
        }
    }
}

/// A database that runs [`Query`]s: a PostgreSQL or a SQLite pool.
#[async_trait]
pub(crate) trait Db: Sync {
    /// A row of this database.
    type Row: ReadRow + Send + Sync;
    /// Where its SQL differs.
    const DIALECT: Dialect;

    /// Every row of a query.
    async fn rows(&self, query: &Query) -> Result<Vec<Self::Row>>;

    /// The one row of a query; [`crate::Error::NotFound`] naming `what` when there is none.
    async fn row(&self, query: &Query, what: &'static str) -> Result<Self::Row>;
}

/// Every row of a query, each read with `read`.
pub(crate) async fn read_all<D: Db, T>(
    db: &D,
    query: &Query,
    read: impl Fn(&D::Row) -> Result<T>,
) -> Result<Vec<T>> {
    db.rows(query).await?.iter().map(read).collect()
}

/// A query of fixed text whose only argument (`$1`) is `value`.
pub(crate) fn with_arg(sql: impl Into<String>, value: Bind) -> Query {
    Query {
        sql: sql.into(),
        binds: vec![value],
    }
}

/// A query without arguments.
pub(crate) fn plain(sql: impl Into<String>) -> Query {
    Query {
        sql: sql.into(),
        binds: Vec::new(),
    }
}

fn bound_pg(query: &Query) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Time(time) => bound.bind(*time),
        };
    }
    bound
}

/// SQLite stores times as Unix seconds.
fn bound_sqlite(query: &Query) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    let mut bound = sqlx::query(&query.sql);
    for bind in &query.binds {
        bound = match bind {
            Bind::Text(text) => bound.bind(text.as_str()),
            Bind::Int(int) => bound.bind(*int),
            Bind::Time(time) => bound.bind(time.unix_timestamp()),
        };
    }
    bound
}

#[async_trait]
impl Db for PgPool {
    type Row = PgRow;
    const DIALECT: Dialect = Dialect::Postgres;

    async fn rows(&self, query: &Query) -> Result<Vec<PgRow>> {
        Ok(bound_pg(query).fetch_all(self).await?)
    }

    async fn row(&self, query: &Query, what: &'static str) -> Result<PgRow> {
        bound_pg(query)
            .fetch_one(self)
            .await
            .map_err(|error| rows::not_found_as(what, error))
    }
}

#[async_trait]
impl Db for SqlitePool {
    type Row = SqliteRow;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn rows(&self, query: &Query) -> Result<Vec<SqliteRow>> {
        Ok(bound_sqlite(query).fetch_all(self).await?)
    }

    async fn row(&self, query: &Query, what: &'static str) -> Result<SqliteRow> {
        bound_sqlite(query)
            .fetch_one(self)
            .await
            .map_err(|error| rows::not_found_as(what, error))
    }
}
