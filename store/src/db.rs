//! What the two backends share: a pool that runs a [`Query`] (SQL text with `$n`
//! placeholders and its [`Bind`] values), alone or in a write transaction ([`Tx`]), and
//! hands back rows read with [`ReadRow`]. Code that differs between PostgreSQL and SQLite
//! only in types is written once against [`Db`] (the read model, [`crate::read_model`];
//! the writes, [`crate::write`]); what really differs (batch binding, time types, write
//! locking, tuning) stays in `pg` and `sqlite`, each a [`crate::backend::Backend`] (the
//! one implementation of [`Db`] and [`Tx`] is in [`crate::backend`]), and small
//! differences of SQL text are [`Dialect`] methods.

use async_trait::async_trait;
use certfleet_model::Finding;
use time::{Date, OffsetDateTime};

use crate::browse::MtlsState;
use crate::error::Result;
use crate::records::WorkloadTags;
use crate::rows::ReadRow;

/// Where the two SQL dialects differ for these queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A value to bind, in the order of the `$n` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    Time(OffsetDateTime),
    Date(Date),
    Bytes(Vec<u8>),
    /// A list of ids: an `int8[]` on PostgreSQL, a JSON array on SQLite (see
    /// [`Dialect::any`]).
    Ints(Vec<i64>),
    /// A list of texts, bound like [`Bind::Ints`].
    Texts(Vec<String>),
    /// One column of a [`Batch`] (PostgreSQL binds a batch a column at a time).
    Column(Column),
}

/// The values of one column of a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Text(TextColumn),
    Int(Vec<Option<i64>>),
    Int4(Vec<Option<i32>>),
    Bool(Vec<Option<bool>>),
    Time(Vec<Option<OffsetDateTime>>),
}

impl Column {
    /// The value of row `index`, as JSON (times as Unix seconds, as SQLite stores them).
    pub fn json(&self, index: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Column::Text(values) => values.get(index).map_or(Value::Null, Value::from),
            Column::Int(values) => values[index].map_or(Value::Null, Value::from),
            Column::Int4(values) => values[index].map_or(Value::Null, Value::from),
            Column::Bool(values) => values[index].map_or(Value::Null, Value::from),
            Column::Time(values) => {
                values[index].map_or(Value::Null, |time| Value::from(time.unix_timestamp()))
            }
        }
    }
}

/// The texts of one batch column, packed in one buffer: a batch of 400,000 sockets has
/// eight text columns, and one allocation per column instead of one per value is what
/// keeps binding them as cheap as binding borrowed strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextColumn {
    buffer: String,
    spans: Vec<Option<(usize, usize)>>,
}

impl TextColumn {
    /// Room for `rows` values.
    pub fn with_capacity(rows: usize) -> Self {
        TextColumn {
            buffer: String::new(),
            spans: Vec::with_capacity(rows),
        }
    }

    /// Appends one value.
    pub fn push(&mut self, value: Option<&str>) {
        let span = value.map(|text| {
            let start = self.buffer.len();
            self.buffer.push_str(text);
            (start, self.buffer.len())
        });
        self.spans.push(span);
    }

    /// The value of row `index` (`None` for NULL or past the end).
    pub fn get(&self, index: usize) -> Option<&str> {
        let (start, end) = (*self.spans.get(index)?)?;
        self.buffer.get(start..end)
    }

    /// Every value, in row order.
    pub fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        (0..self.spans.len()).map(|index| self.get(index))
    }
}

impl<'a> FromIterator<Option<&'a str>> for TextColumn {
    fn from_iter<I: IntoIterator<Item = Option<&'a str>>>(values: I) -> Self {
        let values = values.into_iter();
        let mut texts = TextColumn::with_capacity(values.size_hint().0);
        values.for_each(|value| texts.push(value));
        texts
    }
}

/// A type of value a [`Batch`] column holds.
pub trait ColumnValue: Sized {
    /// Its PostgreSQL type.
    const SQL_TYPE: &'static str;
    /// The column of these values.
    fn column(values: Vec<Option<Self>>) -> Column;
}

/// `impl ColumnValue` for the types stored as they are.
macro_rules! column_values {
    ($($value:ty => $sql_type:literal, $variant:ident;)*) => {$(
        impl ColumnValue for $value {
            const SQL_TYPE: &'static str = $sql_type;
            fn column(values: Vec<Option<Self>>) -> Column {
                Column::$variant(values)
            }
        }
    )*};
}

column_values! {
    i64 => "int8", Int;
    i32 => "int4", Int4;
    bool => "bool", Bool;
    OffsetDateTime => "timestamptz", Time;
}

/// Texts worked out per row (a status, an address): packed like borrowed ones (see
/// [`Batch::text`], which spares the copy when the rows hold the text already).
impl ColumnValue for String {
    const SQL_TYPE: &'static str = "text";
    fn column(values: Vec<Option<Self>>) -> Column {
        Column::Text(values.iter().map(Option::as_deref).collect())
    }
}

/// Rows to write in one statement, a column at a time: each column has a name (the SQL
/// reads it as `u.<name>`) and a PostgreSQL array type. A backend binds it its own way
/// ([`Db::bind_batch`]): arrays and `UNNEST` on PostgreSQL, one JSON array of rows and
/// `json_each` on SQLite.
#[derive(Debug, Default)]
pub struct Batch {
    pub len: usize,
    pub columns: Vec<(&'static str, &'static str, Column)>,
}

impl Batch {
    /// A batch of `len` rows, columns to be added.
    pub fn new(len: usize) -> Self {
        Batch {
            len,
            columns: Vec::new(),
        }
    }

    /// Adds a column: its name, and the value of each row.
    pub fn column<T, V: ColumnValue>(
        mut self,
        name: &'static str,
        rows: &[T],
        value: impl Fn(&T) -> Option<V>,
    ) -> Self {
        let values = rows.iter().map(value).collect();
        self.columns.push((name, V::SQL_TYPE, V::column(values)));
        self
    }

    /// Adds a text column whose values the rows already hold, copied once into the
    /// column's buffer.
    pub fn text<T>(
        mut self,
        name: &'static str,
        rows: &[T],
        value: impl Fn(&T) -> Option<&str>,
    ) -> Self {
        let texts = rows.iter().map(value).collect();
        self.columns.push((name, "text", Column::Text(texts)));
        self
    }

    /// Adds the workload tags as columns `app`, `env` and `owner`.
    pub fn tags<T>(self, rows: &[T], tags: impl Fn(&T) -> &WorkloadTags) -> Self {
        self.text("app", rows, |row| tags(row).app.as_deref())
            .text("env", rows, |row| tags(row).env.as_deref())
            .text("owner", rows, |row| tags(row).owner.as_deref())
    }

    /// The column names, comma-separated.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _, _)| *name).collect();
        names.join(", ")
    }
}

/// SQL text and its arguments.
#[derive(Debug, Default)]
pub struct Query {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Query {
    /// Adds an argument; returns its placeholder.
    pub fn arg(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }
}

impl Dialect {
    /// The larger of two values (`GREATEST` / SQLite's two-argument `max`).
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("GREATEST({a}, {b})"),
            Dialect::Sqlite => format!("max({a}, {b})"),
        }
    }

    /// The smaller of two values (`LEAST` / SQLite's two-argument `min`).
    pub fn least(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("LEAST({a}, {b})"),
            Dialect::Sqlite => format!("min({a}, {b})"),
        }
    }

    /// The function that builds a JSON object of key, value, ... arguments.
    pub fn json_object(self) -> &'static str {
        match self {
            Dialect::Postgres => "jsonb_build_object",
            Dialect::Sqlite => "json_object",
        }
    }

    /// A JSON value written into a JSON column: `jsonb` on PostgreSQL, text on SQLite.
    pub fn json(self, expression: &str) -> String {
        match self {
            Dialect::Postgres => format!("{expression}::jsonb"),
            Dialect::Sqlite => expression.to_string(),
        }
    }

    /// True when the JSON column `column` holds the same document as the text `value`.
    pub fn same_json(self, column: &str, value: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column} = {value}::jsonb"),
            Dialect::Sqlite => format!("json({column}) = json({value})"),
        }
    }

    /// True when any of `columns` differs between tables `left` and `right`, NULL
    /// counting as a value: a row comparison on PostgreSQL, one `IS NOT` per column on
    /// SQLite.
    pub fn distinct(self, left: &str, right: &str, columns: &[&str]) -> String {
        let side = |table: &str| -> Vec<String> {
            columns.iter().map(|c| format!("{table}.{c}")).collect()
        };
        let (left, right) = (side(left), side(right));
        match self {
            Dialect::Postgres => format!(
                "({}) IS DISTINCT FROM ({})",
                left.join(", "),
                right.join(", ")
            ),
            Dialect::Sqlite => {
                let pairs: Vec<String> = left
                    .iter()
                    .zip(&right)
                    .map(|(a, b)| format!("{a} IS NOT {b}"))
                    .collect();
                format!("({})", pairs.join(" OR "))
            }
        }
    }

    /// `<expression> <this>` is true when the expression is in the list bound at
    /// `placeholder` ([`Bind::Ints`] or [`Bind::Texts`]).
    pub fn any(self, placeholder: &str) -> String {
        match self {
            Dialect::Postgres => format!("= ANY({placeholder})"),
            Dialect::Sqlite => format!("IN (SELECT value FROM json_each({placeholder}))"),
        }
    }

    /// Locks the rows a `SELECT` reads until the transaction ends (PostgreSQL); SQLite's
    /// write transaction already holds the whole database.
    pub fn for_update(self, of: &str) -> String {
        match self {
            Dialect::Postgres if of.is_empty() => " FOR UPDATE".to_string(),
            Dialect::Postgres => format!(" FOR UPDATE OF {of}"),
            Dialect::Sqlite => String::new(),
        }
    }

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
pub trait Db: Send + Sync + std::fmt::Debug + Clone + 'static {
    /// A row of this database.
    type Row: ReadRow + Send + Sync;
    /// A write transaction.
    type Tx: Tx<Row = Self::Row>;
    /// Where its SQL differs.
    const DIALECT: Dialect;

    /// Every row of a query.
    async fn rows(&self, query: &Query) -> Result<Vec<Self::Row>>;

    /// The one row of a query; [`crate::Error::NotFound`] naming `what` when there is none.
    async fn row(&self, query: &Query, what: &'static str) -> Result<Self::Row>;

    /// Every row of a heavy read, each read with `read` as it arrives (so that reading
    /// overlaps the server's work and the raw rows are never all held at once), with the
    /// backend's tuning for it.
    async fn heavy_read<T, F>(&self, query: &Query, read: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(&Self::Row) -> Result<T> + Send + Sync;

    /// Begins a write transaction (SQLite: holding the write lock from the start).
    async fn begin(&self) -> Result<Self::Tx>;

    /// Runs one writing statement and returns its rows (`RETURNING`): on its own on
    /// PostgreSQL, in a write transaction on SQLite.
    async fn write_rows(&self, query: &Query) -> Result<Vec<Self::Row>>;

    /// Runs one writing statement, as [`Db::write_rows`] does, and returns the rows it
    /// changed.
    async fn write(&self, query: &Query) -> Result<u64>;

    /// Binds a batch to `query` and returns the table that reads it, `u`.
    fn bind_batch(query: &mut Query, batch: Batch) -> String;

    /// Applies the embedded migrations not applied yet.
    async fn migrate(&self) -> Result<()>;
}

/// A write transaction: dropped without [`Tx::commit`], it rolls back.
#[async_trait]
pub trait Tx: Send {
    /// A row of this database.
    type Row: ReadRow + Send + Sync;

    /// Every row of a query.
    async fn rows(&mut self, query: &Query) -> Result<Vec<Self::Row>>;

    /// Runs a statement; returns the rows it changed.
    async fn execute(&mut self, query: &Query) -> Result<u64>;

    /// Makes the transaction's writes durable.
    async fn commit(self) -> Result<()>;
}

/// Every row of a query, each read with `read`.
pub async fn read_all<D: Db, T>(
    db: &D,
    query: &Query,
    read: impl Fn(&D::Row) -> Result<T>,
) -> Result<Vec<T>> {
    db.rows(query).await?.iter().map(read).collect()
}

/// A query of fixed text whose only argument (`$1`) is `value`.
pub fn with_arg(sql: impl Into<String>, value: Bind) -> Query {
    Query {
        sql: sql.into(),
        binds: vec![value],
    }
}

/// A query without arguments.
pub fn plain(sql: impl Into<String>) -> Query {
    Query {
        sql: sql.into(),
        binds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_column_keeps_each_value_null_and_empty_apart() {
        let texts: TextColumn = [Some("a"), None, Some(""), Some("ünï")]
            .into_iter()
            .collect();
        let values: Vec<Option<&str>> = texts.iter().collect();
        assert_eq!(values, [Some("a"), None, Some(""), Some("ünï")]);
        assert_eq!(texts.get(4), None);
        let column = Column::Text(texts);
        assert_eq!(column.json(1), serde_json::Value::Null);
        assert_eq!(column.json(3), serde_json::json!("ünï"));
    }

    #[test]
    fn a_batch_binds_ports_as_int4_and_texts_as_text() {
        let rows = [(443_i32, "a".to_string()), (8443, "b".to_string())];
        let batch = Batch::new(rows.len())
            .column("port", &rows, |r| Some(r.0))
            .text("address", &rows, |r| Some(r.1.as_str()));
        assert_eq!(batch.names(), "port, address");
        assert_eq!(batch.columns[0].1, "int4");
        assert_eq!(
            batch.columns[0].2,
            Column::Int4(vec![Some(443), Some(8443)])
        );
        assert_eq!(batch.columns[1].1, "text");
        assert_eq!(batch.columns[1].2.json(1), serde_json::json!("b"));
    }
}
