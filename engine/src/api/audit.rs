//! `/v1/audit-events`: the engine's own audit log, filtered and paginated with stable cursors,
//! each event with its human summary.

use super::guard::{self, Caller, Route};
use super::openapi::Object;
use super::{ApiError, ApiResult, AppState, PageParams};
use crate::access::Need;
use crate::audit::ExportFormat;
use crate::store::AuditFilter;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        guard::get("/audit-events", Need::AuditLog, list)
            .doc("Lists the engine's audit events, newest first, each with its summary")
            .query::<AuditParams>()
            .page::<Object>(),
        guard::get("/audit-events/export", Need::AuditLog, export)
            .doc("Exports the filtered audit events as JSON Lines or CSV")
            .query::<ExportParams>()
            .returns_as::<String>(StatusCode::OK, "application/x-ndjson")
            .returns_as::<String>(StatusCode::OK, "text/csv"),
        guard::get("/audit-events/verify", Need::AuditLog, verify)
            .doc("Verifies the keyed hash chain, naming every problem found")
            .query::<VerifyParams>()
            .returns::<Object>(StatusCode::OK),
    ]
}

/// The query of `/audit-events`, for the document: [`crate::audit::query::parse`] reads it by
/// hand (repeated names), and a test holds the two to the same names.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct AuditParams {
    /// Only these actions (repeat the parameter for more).
    action: Option<Vec<String>>,
    /// Only these projects (repeat the parameter for more).
    project_id: Option<Vec<String>>,
    user_id: Option<String>,
    /// RFC 3339, inclusive.
    created_after: Option<String>,
    /// RFC 3339, exclusive.
    created_before: Option<String>,
    /// 1 to 500 (default 50).
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The query of `/audit-events/export`: the list's filters and the format.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ExportParams {
    /// `jsonl` (the default) or `csv`.
    format: Option<ExportName>,
    action: Option<Vec<String>>,
    project_id: Option<Vec<String>>,
    user_id: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum ExportName {
    Jsonl,
    Csv,
}

/// The query of `/audit-events/verify`.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct VerifyParams {
    /// A head kept elsewhere, `SEQ:HASH[:SIG]` as `hookflow audit head` printed it.
    head: Option<String>,
}

/// Walks the whole hash chain with this server's audit key ([`crate::audit::verify`]): intact
/// with the number of events checked, or every problem found, each named (`problems`, the
/// first also as `brokenAt`). `?head=SEQ:HASH[:SIG]` checks a head kept elsewhere is still in
/// the chain. Verifying is reading the log: platform admins and auditors get the whole answer; a
/// project admin, whose projects' events are links of the same platform-wide chain, learns
/// whether it is intact but nothing about other projects' events (neither the count nor where
/// it broke).
async fn verify(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let mut head = None;
    for (name, value) in crate::audit::query::params(uri.query()) {
        match name.as_str() {
            "head" => {
                head = Some(
                    value
                        .parse::<crate::audit::ExternalHead>()
                        .map_err(ApiError::bad_request)?,
                )
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown parameter (only head)"
                )));
            }
        }
    }
    let report =
        crate::audit::verify(&app.store, crate::store::audit::key(), head.as_ref()).await?;
    if caller.visible.is_some() {
        return Ok(Json(json!({"intact": report.intact})));
    }
    let mut body = json!(report);
    if let Some(first) = report.problems.first() {
        body["brokenAt"] =
            json!({"seq": first.seq, "id": first.id, "kind": first.kind, "reason": first.message});
    }
    Ok(Json(body))
}

/// Limits `filter` to the projects the caller reads the log of: a project admin sees only
/// their projects' events (never platform-level ones); asking for another project is a 404.
fn scoped(caller: &Caller, mut filter: AuditFilter) -> ApiResult<AuditFilter> {
    if let Some(visible) = &caller.visible {
        if let Some(foreign) = filter.project_ids.iter().find(|p| !visible.contains(p)) {
            return Err(ApiError::not_found(format!("project {foreign} not found")));
        }
        if filter.project_ids.is_empty() {
            filter.project_ids = visible.clone();
        }
    }
    Ok(filter)
}

/// Streams every matching event (newest first) as JSONL or CSV, a page at a time.
async fn export(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let query = uri.query().unwrap_or("");
    let format_value = crate::audit::query::params(Some(query))
        .into_iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v)
        .unwrap_or_else(|| "jsonl".into());
    let format = ExportFormat::parse(&format_value).ok_or_else(|| {
        ApiError::bad_request(format!(
            "format: must be jsonl or csv, got {format_value:?}"
        ))
    })?;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("format=") && !p.is_empty())
        .collect();
    let mut filter = scoped(&caller, filter_from_query(Some(&rest.join("&")))?)?;
    filter.limit = 500;
    let store = app.store.clone();
    let first = futures::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(format.header().as_bytes()))
    });
    let pages = futures::stream::unfold(Some(filter), move |state| {
        let store = store.clone();
        async move {
            let mut filter = state?;
            match store.list_audit(&filter).await {
                Ok(page) => {
                    let text: String = page
                        .data
                        .into_iter()
                        .map(|e| format.line(&crate::audit::with_summary(e)))
                        .collect();
                    let next = page
                        .next
                        .as_deref()
                        .and_then(crate::store::Cursor::decode)
                        .map(|c| {
                            filter.cursor = Some(c);
                            filter
                        });
                    Some((Ok(bytes::Bytes::from(text)), next))
                }
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
            }
        }
    });
    let body = axum::body::Body::from_stream(futures::StreamExt::chain(first, pages));
    Ok((
        [(axum::http::header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response())
}

/// Builds the filter from the query string (`audit::query`), naming the parameter at fault.
pub fn filter_from_query(query: Option<&str>) -> ApiResult<AuditFilter> {
    let parsed = crate::audit::query::parse(query).map_err(ApiError::bad_request)?;
    let page = PageParams {
        limit: parsed.limit,
        cursor: parsed.cursor,
    };
    let (limit, cursor) = page.parse()?;
    let mut filter = parsed.filter;
    filter.limit = limit;
    filter.cursor = cursor;
    Ok(filter)
}

async fn list(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let filter = scoped(&caller, filter_from_query(uri.query())?)?;
    let mut page = app.store.list_audit(&filter).await?;
    page.data = page
        .data
        .into_iter()
        .map(crate::audit::with_summary)
        .collect();
    Ok(Json(json!(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document names exactly the parameters the hand-written parser reads.
    #[test]
    fn documented_parameters_are_the_parsed_ones() {
        let schema = schemars::schema_for!(AuditParams);
        let names: Vec<&String> = schema.as_object().unwrap()["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(names.len(), 7);
        for name in names {
            let value = match name.as_str() {
                "limit" => "10".to_string(),
                "createdAfter" | "createdBefore" => "2026-01-01T00:00:00Z".to_string(),
                "cursor" => crate::store::Cursor::After("x".into()).encode(),
                _ => "x".to_string(),
            };
            let query = format!("{name}={value}");
            assert!(filter_from_query(Some(&query)).is_ok(), "{query}");
        }
        assert!(filter_from_query(Some("undocumented=1")).is_err());
    }

    #[test]
    fn repeated_and_encoded_parameters() {
        let f = filter_from_query(Some("action=flow.created&action=flow.run.finished&createdAfter=2026-01-01T00%3A00%3A00%2B01%3A00&limit=10")).unwrap();
        assert_eq!(f.actions, ["flow.created", "flow.run.finished"]);
        assert_eq!(f.created_after.as_deref(), Some("2025-12-31T23:00:00.000Z"));
        assert_eq!(f.limit, 10);
        assert!(filter_from_query(Some("nope=1")).is_err());
        assert!(filter_from_query(Some("createdBefore=yesterday")).is_err());
    }
}
