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

/// Runs `sql` once per row with `{rows}` replaced by a one-row source of bound parameters
/// (`(SELECT ? AS a, ? AS b) AS v`): one prepared statement, bound and stepped per row, which in
/// SQLite is as fast as a multi-row statement and keeps the SQL text the same as PostgreSQL's.
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
    let sql = sql.replace(ROWS, &row_source(columns));
    let mut stmt = conn.prepare_cached(&sql)?;
    let names = column_names(&stmt);
    let mut out = Vec::new();
    for row in rows {
        if row.len() != columns.len() {
            return Err(StoreError::database(
                DbErrorKind::Other,
                format!(
                    "a bulk row has {} values for {} columns",
                    row.len(),
                    columns.len()
                ),
            ));
        }
        collect(&mut stmt, &names, row, &mut out)?;
    }
    Ok(out)
}

/// `(SELECT ? AS a, ? AS b) AS v` for the columns `a`, `b`.
fn row_source(columns: &[Col]) -> String {
    let values: Vec<String> = columns.iter().map(|c| format!("? AS {}", c.0)).collect();
    format!("(SELECT {}) AS v", values.join(", "))
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
    let mut rows = stmt.query(params_from_iter(params.iter().map(to_sql)))?;
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
