//! Decoding PostgreSQL rows into store records, and the cursor pagination every list shares.
//! Kept apart from the SQL so each query module only says what it reads and writes.

pub(crate) use crate::store::paginate;
use crate::store::{Cursor, FlowRecord, RunSummary, StepRecord, StoreError, StoreResult};
use serde_json::Value;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{QueryBuilder, Row};
use std::str::FromStr;

/// Parses a JSON column that must hold valid JSON.
pub fn json(text: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Parses an optional JSON column.
pub fn json_opt(text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| json(&t)).transpose()
}

/// Parses a column holding one of the store's string enums.
pub fn parse_enum<T: FromStr<Err = String>>(row: &PgRow, column: &str) -> StoreResult<T> {
    row.try_get::<String, _>(column)?
        .parse()
        .map_err(StoreError::Corrupt)
}

pub fn flow_record(row: &PgRow) -> StoreResult<FlowRecord> {
    let definition: String = row.try_get("definition")?;
    Ok(FlowRecord {
        id: row.try_get("id")?,
        platform_id: row.try_get("platform_id")?,
        project_id: row.try_get("project_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        definition: json(&definition)?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
    })
}

pub fn run_summary(row: &PgRow) -> StoreResult<RunSummary> {
    Ok(RunSummary {
        id: row.try_get("id")?,
        platform_id: row.try_get("platform_id")?,
        project_id: row.try_get("project_id")?,
        flow_id: row.try_get("flow_id")?,
        flow_version: row.try_get("flow_version")?,
        event_id: row.try_get("event_id")?,
        environment: parse_enum(row, "environment")?,
        status: parse_enum(row, "status")?,
        attempt: row.try_get("attempt")?,
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        duration_ms: row.try_get("duration_ms")?,
        error: row.try_get("error")?,
    })
}

pub fn step_record(row: &PgRow) -> StoreResult<StepRecord> {
    Ok(StepRecord {
        name: row.try_get("name")?,
        seq: row.try_get("seq")?,
        kind: parse_enum(row, "kind")?,
        status: parse_enum(row, "status")?,
        input: json_opt(row.try_get("input")?)?,
        output: json_opt(row.try_get("output")?)?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        duration_ms: row.try_get("duration_ms")?,
        detail: json_opt(row.try_get("detail")?)?,
    })
}

/// Adds the cursor condition on `column`, newest-first order and `limit + 1` (to see whether
/// more rows exist). Returns true when the page is fetched backwards (oldest first) and must be
/// reversed by [`paginate`].
pub fn push_cursor<'a, T>(
    q: &mut QueryBuilder<'a, Postgres>,
    column: &str,
    cursor: Option<(&Cursor, T)>,
    limit: u32,
) -> bool
where
    T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres>,
{
    let backwards = matches!(cursor, Some((Cursor::Before(_), _)));
    if let Some((cursor, key)) = cursor {
        let op = match cursor {
            Cursor::After(_) => " < ",
            Cursor::Before(_) => " > ",
        };
        q.push(" AND ").push(column).push(op).push_bind(key);
    }
    let order = if backwards { "ASC" } else { "DESC" };
    q.push(format!(" ORDER BY {column} {order} LIMIT "));
    q.push_bind(i64::from(limit) + 1);
    backwards
}

/// The id a cursor points at.
pub fn cursor_key(cursor: &Cursor) -> &str {
    match cursor {
        Cursor::After(id) | Cursor::Before(id) => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginate_marks_more_and_reverses_backwards_pages() {
        let page = paginate(vec![5, 4, 3], 2, false, false, |n| n.to_string());
        assert_eq!(page.data, vec![5, 4]);
        assert_eq!(page.next, Some(Cursor::After("4".into()).encode()));
        assert_eq!(page.previous, None);
        let page = paginate(vec![6, 7], 2, true, true, |n| n.to_string());
        assert_eq!(page.data, vec![7, 6]);
        assert_eq!(page.next, Some(Cursor::After("6".into()).encode()));
        assert_eq!(page.previous, None);
    }
}
