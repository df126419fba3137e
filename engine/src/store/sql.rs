//! The dialect interface: the little that differs between SQLite and PostgreSQL, and the
//! backend-neutral values, rows and jobs everything above it is written against.
//!
//! Business logic (flows, runs, audit, outbox, ...) is written once as `async fn(&mut dyn Conn,
//! ...)`. A backend runs such a function as a [`Job`] inside one transaction: PostgreSQL on a
//! pooled connection, SQLite on its dedicated writer thread (or a reader thread), where every
//! statement is a direct call on the connection: no per-statement hand-off between threads.
//!
//! What the SQL text itself may use is the common subset of both databases: `?` placeholders
//! (PostgreSQL's connection renumbers them), `RETURNING`, `ON CONFLICT`, `UPDATE … FROM`, row
//! values. What differs is asked of the [`Dialect`] (row locking clauses) or of the connection
//! ([`Conn::bulk`] for the multi-row statement shape, [`Conn::notify`]).

use super::{StoreError, StoreResult};
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

/// A boxed, sendable future: what a [`Job`] returns and backends drive.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A unit of work run in one transaction (writes) or on one connection (reads). Written once,
/// run by either backend.
pub type Job<T> =
    Box<dyn for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, StoreResult<T>> + Send + 'static>;

/// Boxes a closure as a [`Job`]: `job(move |c| Box::pin(async move { flows::get(c, &id).await }))`.
pub fn job<T, F>(f: F) -> Job<T>
where
    F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, StoreResult<T>> + Send + 'static,
{
    Box::new(f)
}

/// Which SQL dialect a connection speaks, for the few clauses that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One writer (a thread holding the only write connection): rows never need locking.
    Sqlite,
    /// Many writers across processes: claims skip locked rows, multi-row changes lock in order.
    Postgres,
}

impl Dialect {
    /// Appended to a `SELECT` whose rows the transaction will change and others may be claiming:
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL, nothing on SQLite (its writer is alone).
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// [`Dialect::skip_locked`] for a join: locks only the rows of the table aliased `alias`.
    pub fn skip_locked_of(self, alias: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR UPDATE OF {alias} SKIP LOCKED"),
        }
    }

    /// Appended to a `SELECT` whose rows the transaction must hold until it ends.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// True when rows must be locked explicitly (in a fixed order) before changing several.
    pub fn locks_rows(self) -> bool {
        self == Dialect::Postgres
    }
}

/// Column types, for the row sources of [`Conn::bulk`] (PostgreSQL binds a typed array per
/// column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Int,
    Real,
    Bool,
    Blob,
}

/// One column of a [`Conn::bulk`] row source: the name the statement refers to as `v.<name>`.
#[derive(Debug, Clone, Copy)]
pub struct Col(pub &'static str, pub Ty);

/// A bound parameter. Nulls carry their type, as PostgreSQL wants typed parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
    Blob(Option<Vec<u8>>),
}

macro_rules! param_from {
    ($($t:ty => $variant:ident($conv:expr)),+ $(,)?) => {$(
        impl From<$t> for Param {
            fn from(value: $t) -> Param {
                #[allow(clippy::redundant_closure_call)]
                Param::$variant(($conv)(value))
            }
        }
    )+};
}

param_from!(
    String => Text(Some),
    &String => Text(|v: &String| Some(v.clone())),
    &str => Text(|v: &str| Some(v.to_string())),
    Option<String> => Text(|v| v),
    &Option<String> => Text(|v: &Option<String>| v.clone()),
    Option<&String> => Text(|v: Option<&String>| v.cloned()),
    Option<&str> => Text(|v: Option<&str>| v.map(str::to_string)),
    i64 => Int(Some),
    Option<i64> => Int(|v| v),
    u32 => Int(|v| Some(i64::from(v))),
    f64 => Real(Some),
    Option<f64> => Real(|v| v),
    bool => Bool(Some),
    Vec<u8> => Blob(Some),
    &Vec<u8> => Blob(|v: &Vec<u8>| Some(v.clone())),
);

/// Builds a `Vec<Param>`: `params![id, name, 1i64]`.
#[macro_export]
#[doc(hidden)]
macro_rules! __store_params {
    () => { Vec::<$crate::store::sql::Param>::new() };
    ($($value:expr),+ $(,)?) => { vec![$($crate::store::sql::Param::from($value)),+] };
}
pub use crate::__store_params as params;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row read back, decoded without panicking: a missing column or a value of the wrong type is
/// a [`StoreError::Corrupt`] naming the column.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    cells: Vec<Cell>,
}

impl Row {
    /// A row of `cells` under `columns` (shared by every row of one result).
    pub fn new(columns: Arc<[String]>, cells: Vec<Cell>) -> Row {
        Row { columns, cells }
    }

    fn cell(&self, column: &str) -> StoreResult<&Cell> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.cells.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("no column {column} in the result")))
    }

    fn wrong(column: &str, want: &str, got: &Cell) -> StoreError {
        StoreError::Corrupt(format!("column {column}: expected {want}, found {got:?}"))
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, column: &str) -> StoreResult<Option<String>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Text(text) => Ok(Some(text.clone())),
            other => Err(Row::wrong(column, "text", other)),
        }
    }

    /// A text column that must not be NULL.
    pub fn text(&self, column: &str) -> StoreResult<String> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
    }

    /// An integer column that may be NULL.
    pub fn opt_int(&self, column: &str) -> StoreResult<Option<i64>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            other => Err(Row::wrong(column, "an integer", other)),
        }
    }

    /// An integer column that must not be NULL.
    pub fn int(&self, column: &str) -> StoreResult<i64> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
    }

    /// A floating-point column that may be NULL (SQLite may hand back whole numbers as integers).
    pub fn opt_real(&self, column: &str) -> StoreResult<Option<f64>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Real(x) => Ok(Some(*x)),
            Cell::Int(n) => Ok(Some(*n as f64)),
            other => Err(Row::wrong(column, "a number", other)),
        }
    }

    /// A floating-point column that must not be NULL.
    pub fn real(&self, column: &str) -> StoreResult<f64> {
        self.opt_real(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {column} is NULL")))
    }

    /// A boolean column (SQLite stores booleans as 0 and 1).
    pub fn bool(&self, column: &str) -> StoreResult<bool> {
        match self.cell(column)? {
            Cell::Int(n) => Ok(*n != 0),
            other => Err(Row::wrong(column, "a boolean", other)),
        }
    }

    /// A binary column.
    pub fn blob(&self, column: &str) -> StoreResult<Vec<u8>> {
        match self.cell(column)? {
            Cell::Blob(bytes) => Ok(bytes.clone()),
            other => Err(Row::wrong(column, "bytes", other)),
        }
    }

    /// A text column holding JSON.
    pub fn json(&self, column: &str) -> StoreResult<serde_json::Value> {
        parse_json(column, &self.text(column)?)
    }

    /// A nullable text column holding JSON.
    pub fn opt_json(&self, column: &str) -> StoreResult<Option<serde_json::Value>> {
        self.opt_text(column)?
            .map(|text| parse_json(column, &text))
            .transpose()
    }

    /// A text column holding one of the store's string enums.
    pub fn parse<T: FromStr<Err = String>>(&self, column: &str) -> StoreResult<T> {
        self.text(column)?
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
    }
}

fn parse_json(column: &str, text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// A connection inside a transaction (writes) or on its own (reads), as a backend hands it to a
/// [`Job`]. Everything but [`Conn::bulk`] and [`Conn::notify`] is plain SQL in the common subset.
#[async_trait]
pub trait Conn: Send {
    /// The dialect, for the clauses that differ ([`Dialect::skip_locked`], ...).
    fn dialect(&self) -> Dialect;

    /// Runs a statement and returns its rows (a `SELECT`, or a change with `RETURNING`).
    async fn query(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<Vec<Row>>;

    /// The first row a statement returns, if any.
    async fn query_opt(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs a statement and returns how many rows it changed.
    async fn execute(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<u64>;

    /// Runs `sql` over many rows at once. `sql` names the rows as the source `{rows}`, whose
    /// columns are `v.<name>` for every [`Col`], and has no other parameters; for an `INSERT …
    /// SELECT` it needs a `WHERE` clause (SQLite reads `ON CONFLICT` after a bare `FROM` as a
    /// join). Returns every row the statement returned. PostgreSQL binds one array per column
    /// (one statement for any number of rows); SQLite runs the prepared statement once per row.
    async fn bulk(
        &mut self,
        sql: &str,
        columns: &[Col],
        rows: Vec<Vec<Param>>,
    ) -> StoreResult<Vec<Row>>;

    /// Tells every process sharing the database, once this transaction commits, that something
    /// happened on `channel` (PostgreSQL `NOTIFY`). SQLite has one process: nothing to do.
    async fn notify(&mut self, channel: &str) -> StoreResult<()>;
}

/// `?, ?, ?` for `n` values: the body of an `IN (…)` list.
pub fn placeholders(n: usize) -> String {
    let mut out = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('?');
    }
    out
}

/// Rows per `IN (…)` list or bulk chunk: far below either database's parameter limit.
pub const CHUNK: usize = 400;

/// A backend behind [`super::Store`]: runs jobs, and reports whether it can.
pub trait Backend: Send + Sync + 'static {
    /// Runs `job` in one write transaction: committed when it returns `Ok`, rolled back when it
    /// fails (or panics: the caller gets an error, the backend goes on).
    fn write<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>>;

    /// Runs `job` on a connection that sees committed data (it must not write).
    fn read<T: Send + 'static>(&self, job: Job<T>) -> BoxFut<'_, StoreResult<T>>;

    /// Ok when the backend can serve reads and writes; otherwise why not (a dead writer, an
    /// unreachable server).
    fn health(&self) -> BoxFut<'_, StoreResult<()>>;

    /// Group-commit tasks worth running: one for a single writer, more where several
    /// connections can write at once.
    fn batch_writers(&self) -> usize;

    /// Test hook: stop the writer as if it had failed with `reason` (backends with a writer).
    #[cfg(test)]
    fn stop_writer_for_test(&self, reason: &str) {
        let _ = reason;
    }
}

/// The text a panic was raised with, for the error its job is answered with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// A job's result with its type erased, so the store can hold any backend as a trait object.
pub type Erased = Box<dyn std::any::Any + Send>;

/// [`Backend`] as a trait object: what [`super::Store`] holds. Every backend is one.
pub trait AnyBackend: Send + Sync + 'static {
    fn write_erased(&self, job: Job<Erased>) -> BoxFut<'_, StoreResult<Erased>>;
    fn read_erased(&self, job: Job<Erased>) -> BoxFut<'_, StoreResult<Erased>>;
    fn health(&self) -> BoxFut<'_, StoreResult<()>>;
    fn batch_writers(&self) -> usize;
    #[cfg(test)]
    fn stop_writer_for_test(&self, reason: &str);
}

impl<B: Backend> AnyBackend for B {
    fn write_erased(&self, job: Job<Erased>) -> BoxFut<'_, StoreResult<Erased>> {
        Backend::write(self, job)
    }
    fn read_erased(&self, job: Job<Erased>) -> BoxFut<'_, StoreResult<Erased>> {
        Backend::read(self, job)
    }
    fn health(&self) -> BoxFut<'_, StoreResult<()>> {
        Backend::health(self)
    }
    fn batch_writers(&self) -> usize {
        Backend::batch_writers(self)
    }
    #[cfg(test)]
    fn stop_writer_for_test(&self, reason: &str) {
        Backend::stop_writer_for_test(self, reason)
    }
}

fn erase<T: Send + 'static>(job: Job<T>) -> Job<Erased> {
    Box::new(move |c| Box::pin(async move { Ok(Box::new(job(c).await?) as Erased) }))
}

fn unerase<T: 'static>(value: Erased) -> StoreResult<T> {
    value
        .downcast::<T>()
        .map(|v| *v)
        .map_err(|_| StoreError::Corrupt("a job answered with another type".into()))
}

/// Runs `job` in one write transaction of `backend` (see [`Backend::write`]).
pub async fn write<T: Send + 'static>(backend: &dyn AnyBackend, job: Job<T>) -> StoreResult<T> {
    unerase(backend.write_erased(erase(job)).await?)
}

/// Runs `job` on a read connection of `backend` (see [`Backend::read`]).
pub async fn read<T: Send + 'static>(backend: &dyn AnyBackend, job: Job<T>) -> StoreResult<T> {
    unerase(backend.read_erased(erase(job)).await?)
}

/// Rewrites `?` placeholders as PostgreSQL's `$1, $2, …` (the SQL is ours: no `?` inside
/// literals).
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered_placeholders("SELECT ? WHERE a IN (?, ?)"),
            "SELECT $1 WHERE a IN ($2, $3)"
        );
        assert_eq!(placeholders(3), "?, ?, ?");
        assert_eq!(placeholders(0), "");
    }

    #[test]
    fn rows_decode_without_panicking() {
        let row = Row::new(
            Arc::from(vec!["a".to_string(), "b".to_string()]),
            vec![Cell::Int(3), Cell::Null],
        );
        assert_eq!(row.int("a").unwrap(), 3);
        assert_eq!(row.opt_text("b").unwrap(), None);
        assert!(matches!(row.text("a"), Err(StoreError::Corrupt(m)) if m.contains("column a")));
        assert!(matches!(row.text("b"), Err(StoreError::Corrupt(m)) if m.contains("NULL")));
        assert!(matches!(row.int("c"), Err(StoreError::Corrupt(m)) if m.contains("no column c")));
        assert_eq!(row.real("a").unwrap(), 3.0);
        assert!(row.bool("a").unwrap());
    }
}
