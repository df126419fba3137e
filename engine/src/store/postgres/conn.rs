//! The dialect interface on a PostgreSQL connection: `?` placeholders renumbered, parameters
//! bound with their types, rows decoded into [`Row`]s, many rows bound as one array per column.

use crate::store::sql::{Cell, Col, Conn, Dialect, Param, Row, Ty, numbered_placeholders};
use crate::store::{DbErrorKind, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column, PgConnection, Postgres, Row as _, TypeInfo};
use std::sync::Arc;

impl From<sqlx::Error> for StoreError {
    /// Integrity and data errors (SQLSTATE classes 22 and 23) are a request's own fault;
    /// deadlocks and serialization failures can simply run again.
    fn from(error: sqlx::Error) -> StoreError {
        let kind = match &error {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some(code) if code.starts_with("22") || code.starts_with("23") => DbErrorKind::Data,
                Some("40P01" | "40001") => DbErrorKind::Transient,
                _ => DbErrorKind::Other,
            },
            _ => DbErrorKind::Other,
        };
        StoreError::database(kind, error.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Migrate(error.to_string())
    }
}

/// A connection (inside a transaction for writes) lent to one job.
pub struct PgConn<'a> {
    pub conn: &'a mut PgConnection,
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

fn bind(query: PgQuery<'_>, param: Param) -> PgQuery<'_> {
    match param {
        Param::Text(v) => query.bind(v),
        Param::Int(v) => query.bind(v),
        Param::Real(v) => query.bind(v),
        Param::Bool(v) => query.bind(v),
        Param::Blob(v) => query.bind(v),
    }
}

/// Decodes rows by their column types; a type the store never uses is reported, not guessed.
fn decode(rows: Vec<PgRow>) -> StoreResult<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let columns: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let types: Vec<String> = first
        .columns()
        .iter()
        .map(|c| c.type_info().name().to_string())
        .collect();
    rows.iter()
        .map(|row| {
            let cells = types
                .iter()
                .enumerate()
                .map(|(i, ty)| cell(row, i, ty))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Row::new(columns.clone(), cells))
        })
        .collect()
}

fn cell(row: &PgRow, i: usize, ty: &str) -> StoreResult<Cell> {
    let opt = |v: Option<Cell>| v.unwrap_or(Cell::Null);
    Ok(match ty {
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            opt(row.try_get::<Option<String>, _>(i)?.map(Cell::Text))
        }
        "INT8" => opt(row.try_get::<Option<i64>, _>(i)?.map(Cell::Int)),
        "INT4" => opt(row
            .try_get::<Option<i32>, _>(i)?
            .map(|n| Cell::Int(n.into()))),
        "INT2" => opt(row
            .try_get::<Option<i16>, _>(i)?
            .map(|n| Cell::Int(n.into()))),
        "FLOAT8" => opt(row.try_get::<Option<f64>, _>(i)?.map(Cell::Real)),
        "FLOAT4" => opt(row
            .try_get::<Option<f32>, _>(i)?
            .map(|x| Cell::Real(x.into()))),
        "BOOL" => opt(row
            .try_get::<Option<bool>, _>(i)?
            .map(|b| Cell::Int(b.into()))),
        "BYTEA" => opt(row.try_get::<Option<Vec<u8>>, _>(i)?.map(Cell::Blob)),
        "VOID" => Cell::Null,
        other => {
            return Err(StoreError::Corrupt(format!(
                "column {i} has type {other}, which the store does not read"
            )));
        }
    })
}

fn array_type(ty: Ty) -> &'static str {
    match ty {
        Ty::Text => "text[]",
        Ty::Int => "bigint[]",
        Ty::Real => "float8[]",
        Ty::Bool => "bool[]",
        Ty::Blob => "bytea[]",
    }
}

/// One column of a bulk row source as a typed array.
fn column_array<'q>(
    query: PgQuery<'q>,
    rows: &[Vec<Param>],
    i: usize,
    col: Col,
) -> StoreResult<PgQuery<'q>> {
    let mismatch = || {
        StoreError::Corrupt(format!(
            "bulk column {} is not {:?} in every row",
            col.0, col.1
        ))
    };
    macro_rules! array {
        ($variant:ident) => {{
            let values = rows
                .iter()
                .map(|row| match row.get(i) {
                    Some(Param::$variant(v)) => Ok(v.clone()),
                    _ => Err(mismatch()),
                })
                .collect::<StoreResult<Vec<_>>>()?;
            query.bind(values)
        }};
    }
    Ok(match col.1 {
        Ty::Text => array!(Text),
        Ty::Int => array!(Int),
        Ty::Real => array!(Real),
        Ty::Bool => array!(Bool),
        Ty::Blob => array!(Blob),
    })
}

#[async_trait]
impl Conn for PgConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<Vec<Row>> {
        let sql = numbered_placeholders(sql);
        let query = params.into_iter().fold(sqlx::query(&sql), bind);
        decode(query.fetch_all(&mut *self.conn).await?)
    }

    async fn execute(&mut self, sql: &str, params: Vec<Param>) -> StoreResult<u64> {
        let sql = numbered_placeholders(sql);
        let query = params.into_iter().fold(sqlx::query(&sql), bind);
        Ok(query.execute(&mut *self.conn).await?.rows_affected())
    }

    async fn bulk(
        &mut self,
        sql: &str,
        columns: &[Col],
        rows: Vec<Vec<Param>>,
    ) -> StoreResult<Vec<Row>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, array_type(c.1)))
            .collect();
        let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let source = format!("UNNEST({}) AS v({})", arrays.join(", "), names.join(", "));
        let sql = sql.replace("{rows}", &source);
        let mut query = sqlx::query(&sql);
        for (i, col) in columns.iter().enumerate() {
            query = column_array(query, &rows, i, *col)?;
        }
        decode(query.fetch_all(&mut *self.conn).await?)
    }

    async fn notify(&mut self, channel: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}
