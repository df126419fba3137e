//! Decoding rows into store records, and the cursor pagination every list shares: once, for
//! both backends. Kept apart from the SQL so each query module only says what it reads and
//! writes.

use super::sql::{CHUNK, Conn, Param, Row, placeholders};
use super::{
    Cursor, DeliveryRecord, DestinationRecord, FlowRecord, Page, RunSummary, StepRecord,
    StoreError, StoreResult,
};

pub fn flow_record(row: &Row) -> StoreResult<FlowRecord> {
    Ok(FlowRecord {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        project_id: row.text("project_id")?,
        name: row.text("name")?,
        version: row.int("version")?,
        definition: row.json("definition")?,
        created: row.text("created")?,
        updated: row.text("updated")?,
    })
}

pub fn run_summary(row: &Row) -> StoreResult<RunSummary> {
    Ok(RunSummary {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        project_id: row.text("project_id")?,
        flow_id: row.text("flow_id")?,
        flow_version: row.int("flow_version")?,
        event_id: row.text("event_id")?,
        environment: row.parse("environment")?,
        status: row.parse("status")?,
        attempt: row.int("attempt")?,
        created: row.text("created")?,
        started: row.opt_text("started")?,
        finished: row.opt_text("finished")?,
        duration_ms: row.opt_real("duration_ms")?,
        error: row.opt_text("error")?,
    })
}

pub fn step_record(row: &Row) -> StoreResult<StepRecord> {
    Ok(StepRecord {
        name: row.text("name")?,
        seq: row.int("seq")?,
        kind: row.parse("kind")?,
        status: row.parse("status")?,
        input: row.opt_json("input")?,
        output: row.opt_json("output")?,
        error: row.opt_text("error")?,
        attempts: row.int("attempts")?,
        duration_ms: row.real("duration_ms")?,
        detail: row.opt_json("detail")?,
    })
}

pub fn destination(row: &Row) -> StoreResult<DestinationRecord> {
    let corrupt = |column: &str, e: serde_json::Error| {
        StoreError::Corrupt(format!("destination column {column}: {e}"))
    };
    Ok(DestinationRecord {
        id: row.text("id")?,
        platform_id: row.text("platform_id")?,
        project_id: row.text("project_id")?,
        scope: row.parse("scope")?,
        name: row.text("name")?,
        url: row.text("url")?,
        events: serde_json::from_value(row.json("events")?).map_err(|e| corrupt("events", e))?,
        enabled: row.bool("enabled")?,
        content_type: row.text("content_type")?,
        headers: serde_json::from_value(row.json("headers")?).map_err(|e| corrupt("headers", e))?,
        token: row.text("token")?,
        secrets: serde_json::from_value(row.json("secrets")?).map_err(|e| corrupt("secrets", e))?,
        disabled_reason: row.opt_text("disabled_reason")?,
        failing_since: row.opt_text("failing_since")?,
        paused_until: row.opt_int("paused_until")?,
        consecutive_failures: row.int("consecutive_failures")?,
        created: row.text("created")?,
        updated: row.text("updated")?,
    })
}

pub fn delivery_record(row: &Row) -> StoreResult<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.text("id")?,
        event_id: row.text("outbox_id")?,
        attempt: row.int("attempt")?,
        status_code: row.opt_int("status_code")?,
        duration_ms: row.real("duration_ms")?,
        error: row.opt_text("error")?,
        response_body: row.opt_text("response_body")?,
        created: row.text("created")?,
    })
}

/// Adds the cursor condition on `column`, newest-first order and `limit + 1` (to see whether
/// more rows exist) to `sql`. Returns true when the page is fetched backwards (oldest first) and
/// must be reversed by [`paginate`].
pub fn push_cursor(
    sql: &mut String,
    args: &mut Vec<Param>,
    column: &str,
    cursor: Option<(&Cursor, Param)>,
    limit: u32,
) -> bool {
    let backwards = matches!(cursor, Some((Cursor::Before(_), _)));
    if let Some((cursor, key)) = cursor {
        let op = match cursor {
            Cursor::After(_) => "<",
            Cursor::Before(_) => ">",
        };
        sql.push_str(&format!(" AND {column} {op} ?"));
        args.push(key);
    }
    let order = if backwards { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY {column} {order} LIMIT ?"));
    args.push(Param::from(i64::from(limit) + 1));
    backwards
}

/// Turns `limit + 1` fetched rows into a page with `next`/`previous` cursors: a page fetched
/// forwards has `previous` only when it was reached through a cursor; a page fetched backwards
/// always has `next`.
pub fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    backwards: bool,
    had_cursor: bool,
    id: impl Fn(&T) -> String,
) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    if backwards {
        items.reverse();
    }
    let (has_next, has_previous) = if backwards {
        (true, more)
    } else {
        (more, had_cursor)
    };
    let next = has_next
        .then(|| items.last().map(|t| Cursor::After(id(t)).encode()))
        .flatten();
    let previous = has_previous
        .then(|| items.first().map(|t| Cursor::Before(id(t)).encode()))
        .flatten();
    Page {
        data: items,
        next,
        previous,
    }
}

/// Locks the rows of `table` with the given ids, in id order, where the dialect locks rows
/// explicitly (PostgreSQL): every multi-row change locks in the same order, so two transactions
/// never wait on each other's rows in opposite orders. `ids` must be sorted.
pub async fn lock_in_order(c: &mut dyn Conn, table: &str, ids: &[String]) -> StoreResult<()> {
    if !c.dialect().locks_rows() {
        return Ok(());
    }
    for chunk in ids.chunks(CHUNK) {
        let (cond, args) = in_list("id", chunk);
        c.query(
            &format!("SELECT id FROM {table} WHERE {cond} ORDER BY id FOR UPDATE"),
            args,
        )
        .await?;
    }
    Ok(())
}

/// Adds `created` bounds (RFC 3339 in the stored form: `after` inclusive, `before` exclusive).
pub fn push_created_range(
    sql: &mut String,
    args: &mut Vec<Param>,
    after: Option<&String>,
    before: Option<&String>,
) {
    if let Some(after) = after {
        sql.push_str(" AND created >= ?");
        args.push(Param::from(after));
    }
    if let Some(before) = before {
        sql.push_str(" AND created < ?");
        args.push(Param::from(before));
    }
}

/// `column IN (?, …)` over `values`, with the parameters: for lists bounded by the caller
/// (chunk longer ones with [`super::sql::CHUNK`]).
pub fn in_list(column: &str, values: &[String]) -> (String, Vec<Param>) {
    if values.is_empty() {
        // `IN ()` is not SQL; nothing is in an empty list.
        return ("FALSE".to_string(), Vec::new());
    }
    (
        format!("{column} IN ({})", placeholders(values.len())),
        values.iter().map(Param::from).collect(),
    )
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
