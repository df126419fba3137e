//! [`Conn`] over a rusqlite connection.
//!
//! The trait is async because PostgreSQL's connection is; here every method does its work
//! synchronously and returns a ready future. The writer and reader threads drive jobs with
//! `block_on`, so a job's statements run directly on the thread that owns the connection, with no
//! hand-off per statement. Every statement goes through the connection's prepared statement
//! cache.

use crate::store::sql::{Cell, Col, Conn, Dialect, Param, Row};
use crate::store::{DbErrorKind, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, Statement, params_from_iter};
use std::sync::Arc;

/// The placeholder a [`Conn::bulk`] statement names its row source by.
const ROWS: &str = "{rows}";

/// A job's view of a connection (inside a transaction the thread running the job opened).
/// Holds the connection by `&mut`, which keeps it `Send` though `Connection` is not `Sync`.
pub(crate) struct SqliteConn<'a> {
    conn: &'a mut Connection,
}

impl<'a> SqliteConn<'a> {
    pub(crate) fn new(conn: &'a mut Connection) -> SqliteConn<'a> {
        SqliteConn { conn }
    }
}

#[async_trait]
impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<Vec<Row>> {
        query(self.conn, sql, &params)
    }

    async fn execute(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<u64> {
        execute(self.conn, sql, &params)
    }

    async fn bulk(
        &mut self,
        sql: &str,
        columns: &[Col],
        rows: Vec<Vec<Param>>,
    ) -> StoreResult<Vec<Row>> {
        bulk(self.conn, sql, columns, &rows)
    }

    async fn notify(&mut self, _channel: &str) -> StoreResult<()> {
        // One process shares this database: whoever cares already runs in it.
        Ok(())
    }
}

/// Runs `sql` and collects its rows (a `SELECT`, or a change with `RETURNING`; a change without
/// it simply returns no rows).
fn query(conn: &Connection, sql: &str, params: &[Param]) -> StoreResult<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns = column_names(&stmt);
    let mut out = Vec::new();
    collect(&mut stmt, &columns, params, &mut out)?;
    Ok(out)
}

/// Runs `sql` and returns how many rows it changed. A statement that returns rows (`SELECT`,
/// `RETURNING`) is refused: it belongs in [`query`].
fn execute(conn: &Connection, sql: &str, params: &[Param]) -> StoreResult<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let changed = stmt.execute(params_from_iter(params.iter().map(to_sql)))?;
    Ok(changed as u64)
}

/// Rows per statement a bulk call uses, largest first. A few fixed sizes keep the number of
/// distinct statements (and so prepared statements in the cache) small for any row count.
const CHUNKS: [usize; 4] = [128, 32, 8, 1];

/// Runs `sql` with `{rows}` replaced by a multi-row source of bound parameters
/// (`(SELECT column1 AS a, column2 AS b FROM (VALUES (?, ?), (?, ?))) AS v`), in chunks of the
/// [`CHUNKS`] sizes: one statement (one statement journal, one program start) per chunk instead of
/// per row, and the same SQL text as PostgreSQL's.
fn bulk(
    conn: &Connection,
    sql: &str,
    columns: &[Col],
    rows: &[Vec<Param>],
) -> StoreResult<Vec<Row>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if !sql.contains(ROWS) {
        return Err(StoreError::database(
            DbErrorKind::Other,
            format!("a bulk statement must name its rows as {ROWS}: {sql}"),
        ));
    }
    if let Some(row) = rows.iter().find(|r| r.len() != columns.len()) {
        return Err(StoreError::database(
            DbErrorKind::Other,
            format!(
                "a bulk row has {} values for {} columns",
                row.len(),
                columns.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = CHUNKS.into_iter().find(|&n| n <= rest.len()).unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        let mut stmt = conn.prepare_cached(&sql.replace(ROWS, &row_source(columns, size)))?;
        let names = column_names(&stmt);
        let params: Vec<&Param> = chunk.iter().flatten().collect();
        collect_refs(&mut stmt, &names, &params, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// `(SELECT column1 AS a, column2 AS b FROM (VALUES (?, ?), …)) AS v` for the columns `a`, `b`
/// and `rows` rows.
fn row_source(columns: &[Col], rows: usize) -> String {
    let names: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("column{} AS {}", i + 1, c.0))
        .collect();
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "(SELECT {} FROM (VALUES {})) AS v",
        names.join(", "),
        vec![row; rows].join(", ")
    )
}

/// The result column names, shared by every row of the result.
fn column_names(stmt: &Statement<'_>) -> Arc<[String]> {
    stmt.column_names().into_iter().map(String::from).collect()
}

/// Binds `params`, steps `stmt` to its end and appends its rows to `out`.
fn collect(
    stmt: &mut Statement<'_>,
    columns: &Arc<[String]>,
    params: &[Param],
    out: &mut Vec<Row>,
) -> StoreResult<()> {
    let params: Vec<&Param> = params.iter().collect();
    collect_refs(stmt, columns, &params, out)
}

/// [`collect`] over borrowed parameters (a bulk chunk's rows, flattened).
fn collect_refs(
    stmt: &mut Statement<'_>,
    columns: &Arc<[String]>,
    params: &[&Param],
    out: &mut Vec<Row>,
) -> StoreResult<()> {
    let mut rows = stmt.query(params_from_iter(params.iter().map(|p| to_sql(p))))?;
    while let Some(row) = rows.next()? {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, name)| cell(name, row.get_ref(i)?))
            .collect::<StoreResult<Vec<Cell>>>()?;
        out.push(Row::new(Arc::clone(columns), cells));
    }
    Ok(())
}

/// A parameter as SQLite binds it, borrowed (no copy of texts or blobs). Booleans are stored as
/// 0 and 1, as SQLite has no boolean type.
fn to_sql(param: &Param) -> ToSqlOutput<'_> {
    let value = match param {
        Param::Text(Some(text)) => ValueRef::Text(text.as_bytes()),
        Param::Int(Some(n)) => ValueRef::Integer(*n),
        Param::Real(Some(x)) => ValueRef::Real(*x),
        Param::Bool(Some(b)) => ValueRef::Integer(i64::from(*b)),
        Param::Blob(Some(bytes)) => ValueRef::Blob(bytes),
        Param::Text(None)
        | Param::Int(None)
        | Param::Real(None)
        | Param::Bool(None)
        | Param::Blob(None) => ValueRef::Null,
    };
    ToSqlOutput::Borrowed(value)
}

/// A value read back. Text that is not UTF-8 (written by something other than hookflow) is
/// reported as corrupt data rather than panicking or being altered.
fn cell(column: &str, value: ValueRef<'_>) -> StoreResult<Cell> {
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Real(x),
        ValueRef::Text(bytes) => Cell::Text(
            std::str::from_utf8(bytes)
                .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))?
                .to_owned(),
        ),
        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
    })
}
