//! The audit log's query string (`/v1/audit-events`, `/v1/audit-events/export`), parsed without
//! the HTTP layer so it can be fuzzed on its own (`fuzz/fuzz_targets/audit_query.rs`).

use crate::store::AuditFilter;

/// What a query string asks for: the filter, and the page parameters as sent (the API checks
/// them with the other list endpoints' rules).
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub filter: AuditFilter,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Parses repeated query parameters (`action=a&action=b`), which serde's flat maps cannot.
/// A pair whose name or value does not decode to UTF-8 is skipped.
pub fn params(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Percent- and `+`-decoding of one name or value; `None` when the bytes are not UTF-8 or a
/// `%` escape is not two hex digits (a `%` too close to the end to start one is kept as is).
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = &bytes[i + 1..i + 3];
                // `from_str_radix` alone would take a sign: `%+1` is not an escape.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Builds the filter from the query string; the error names the parameter at fault.
pub fn parse(query: Option<&str>) -> Result<AuditQuery, String> {
    let mut parsed = AuditQuery::default();
    for (key, value) in params(query) {
        match key.as_str() {
            "limit" => {
                parsed.limit = Some(
                    value
                        .parse()
                        .map_err(|_| format!("limit: not a number: {value:?}"))?,
                )
            }
            "cursor" => parsed.cursor = Some(value),
            "action" => parsed.filter.actions.push(value),
            "projectId" => parsed.filter.project_ids.push(value),
            "userId" => parsed.filter.user_id = Some(value),
            "createdAfter" => parsed.filter.created_after = Some(rfc3339("createdAfter", &value)?),
            "createdBefore" => {
                parsed.filter.created_before = Some(rfc3339("createdBefore", &value)?)
            }
            other => return Err(format!("{other}: unknown parameter")),
        }
    }
    Ok(parsed)
}

/// An RFC 3339 time as the store compares them: UTC with milliseconds.
fn rfc3339(name: &str, value: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .map_err(|_| format!("{name}: not an RFC 3339 time: {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_encoded_and_unknown_parameters() {
        let q = parse(Some("action=flow.created&action=flow.run.finished&createdAfter=2026-01-01T00%3A00%3A00%2B01%3A00&limit=10&userId=a+b")).unwrap();
        assert_eq!(q.filter.actions, ["flow.created", "flow.run.finished"]);
        assert_eq!(
            q.filter.created_after.as_deref(),
            Some("2025-12-31T23:00:00.000Z")
        );
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.filter.user_id.as_deref(), Some("a b"));
        assert_eq!(
            parse(Some("nope=1")).unwrap_err(),
            "nope: unknown parameter"
        );
        assert!(parse(Some("createdBefore=yesterday")).is_err());
        assert!(parse(Some("limit=-1")).is_err());
    }

    /// An escape at the very end (`%41` as the last three bytes) decodes; a `%` too near the
    /// end is kept; one with a sign (`u8::from_str_radix` accepts `+1`) is refused.
    #[test]
    fn percent_escapes_at_the_end_and_malformed() {
        assert_eq!(params(Some("userId=%41")), [("userId".into(), "A".into())]);
        assert_eq!(params(Some("a=%4")), [("a".into(), "%4".into())]);
        assert_eq!(params(Some("a=%+1")), []);
        assert_eq!(params(Some("a=%C3%A9&b=%C3")), [("a".into(), "é".into())]);
    }
}
