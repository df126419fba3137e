//! Webhook intake: everything between the raw HTTP request and the durable event, independent of
//! the HTTP framework. Authentication lives in [`verify`]; parsing and event identity here.

pub mod verify;

use http::HeaderMap;
use serde_json::{Map, Value};

/// Why a webhook body was refused (answered as 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("expected a JSON body, but content-type is {0:?}")]
    NotJsonContentType(String),
    #[error("body is empty; a JSON value is required")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A JSON array (or NDJSON body) without a single event.
    #[error("the batch holds no events; send at least one")]
    EmptyBatch,
    /// More events in one batch than `HOOKFLOW_MAX_BATCH_EVENTS` allows (answered as 413).
    #[error("the batch holds more than the {limit}-event limit (HOOKFLOW_MAX_BATCH_EVENTS)")]
    TooManyEvents { limit: usize },
    /// One element of a batch is not an event the run could parse. `index` counts events from
    /// 0 (blank NDJSON lines are not events); `line` is the element's 1-based NDJSON line.
    #[error("events[{index}]{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Element {
        index: usize,
        line: Option<usize>,
        reason: String,
    },
}

impl BodyError {
    /// The batch element the error is about, if any (for the problem's `index` member).
    pub fn element(&self) -> Option<(usize, Option<usize>)> {
        match self {
            BodyError::Element { index, line, .. } => Some((*index, *line)),
            _ => None,
        }
    }
}

/// How a body's content type says it is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// One JSON value (a top-level array is a batch, see [`parse_webhook`]).
    Json,
    /// One JSON value per line: `application/x-ndjson`, `application/jsonl`.
    Lines,
}

/// Reads the framing from a content type. Accepts JSON labelled as `application/json`, any
/// `+json` type, `text/plain` or `application/x-www-form-urlencoded` (GitLab's audit streaming
/// sends JSON with that label), or no content type at all; and JSON lines.
fn framing(content_type: Option<&str>) -> Result<Framing, BodyError> {
    let Some(ct) = content_type else {
        return Ok(Framing::Json);
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty()
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "text/plain"
        || essence == "application/x-www-form-urlencoded"
    {
        Ok(Framing::Json)
    } else if essence == "application/x-ndjson" || essence == "application/jsonl" {
        Ok(Framing::Lines)
    } else {
        Err(BodyError::NotJsonContentType(essence))
    }
}

/// Parses a webhook body as one JSON value, whatever its shape (an array is one value here).
/// Used where a body is always one event (in-process delivery of the engine's own events);
/// the webhook intake uses [`parse_webhook`], which also knows batches.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<BodyId, BodyError> {
    match framing(content_type)? {
        Framing::Json => parse_one(body),
        Framing::Lines => Err(BodyError::NotJsonContentType(
            content_type.unwrap_or_default().to_string(),
        )),
    }
}

fn parse_one(body: &[u8]) -> Result<BodyId, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    serde_json::from_slice(body).map_err(|e| BodyError::InvalidJson(e.to_string()))
}

/// What a webhook body holds: one event, exactly as before batches existed, or several.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A single JSON value that is not an array: one event, the body stored as sent.
    Single(BodyId),
    /// A top-level JSON array or a JSON-lines body: one event per element, in order.
    Batch(Vec<Element<'a>>),
}

/// One event of a batch: its JSON text exactly as sent (stored as that event's body, and what
/// its run parses as `trigger.body`) and its own `id`, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Element<'a> {
    pub text: &'a str,
    pub id: BodyId,
}

/// Parses a webhook body for the intake, telling a single event from a batch:
///
/// - a JSON body (any content type [`parse_body`] accepts) whose top-level value is an array is
///   a batch, one event per element (Auth0 Log Streams' "JSON array" format, batched senders);
///   an empty array is refused ([`BodyError::EmptyBatch`]);
/// - an `application/x-ndjson` or `application/jsonl` body is a batch of one event per line;
///   blank lines (also with `\r` or spaces) are skipped and are not events; a body of only
///   blank lines is [`BodyError::Empty`];
/// - any other JSON value is a single event, parsed exactly as [`parse_body`] does.
///
/// Every element is checked as strictly as a single body ([`BodyId`]: nesting depth, valid
/// Unicode) and on its own, as its run will parse it; the first bad one is named by its index
/// ([`BodyError::Element`]). More than `max_events` elements is [`BodyError::TooManyEvents`],
/// found without reading past the element over the limit.
pub fn parse_webhook<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
    max_events: usize,
) -> Result<Parsed<'a>, BodyError> {
    match framing(content_type)? {
        Framing::Lines => parse_lines(body, max_events).map(Parsed::Batch),
        Framing::Json if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') => {
            parse_array(body, max_events).map(Parsed::Batch)
        }
        Framing::Json => parse_one(body).map(Parsed::Single),
    }
}

/// One element checked as a body of its own (the run parses it alone).
fn parse_element(text: &str, index: usize, line: Option<usize>) -> Result<Element<'_>, BodyError> {
    let id = serde_json::from_str::<BodyId>(text).map_err(|e| BodyError::Element {
        index,
        line,
        reason: format!("not valid JSON: {e}"),
    })?;
    Ok(Element { text, id })
}

fn parse_lines(body: &[u8], max_events: usize) -> Result<Vec<Element<'_>>, BodyError> {
    let mut elements = Vec::new();
    for (number, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let index = elements.len();
        if index == max_events {
            return Err(BodyError::TooManyEvents { limit: max_events });
        }
        let text = std::str::from_utf8(line).map_err(|_| BodyError::Element {
            index,
            line: Some(number + 1),
            reason: "not valid UTF-8".into(),
        })?;
        elements.push(parse_element(text, index, Some(number + 1))?);
    }
    if elements.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(elements)
}

fn parse_array(body: &[u8], max_events: usize) -> Result<Vec<Element<'_>>, BodyError> {
    use serde::Deserializer as _;
    // The array is split into its elements' raw text first (syntax only), counting them as they
    // are read: a syntax error is named by the element it is in, and the count is capped there.
    let reached = std::cell::Cell::new(0);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let raw = deserializer
        .deserialize_seq(RawElements {
            reached: &reached,
            max_events,
        })
        .map_err(|e| match reached.get() {
            n if n > max_events => BodyError::TooManyEvents { limit: max_events },
            index => BodyError::Element {
                index,
                line: None,
                reason: format!("not valid JSON: {e}"),
            },
        })?;
    deserializer
        .end()
        .map_err(|e| BodyError::InvalidJson(e.to_string()))?;
    if raw.is_empty() {
        return Err(BodyError::EmptyBatch);
    }
    raw.iter()
        .enumerate()
        .map(|(index, text)| parse_element(text.get(), index, None))
        .collect()
}

/// The elements of a top-level array as raw JSON text, borrowed from the body. `reached` says
/// how many were read when an error stopped it (the failing element's index, or past the cap).
struct RawElements<'c> {
    reached: &'c std::cell::Cell<usize>,
    max_events: usize,
}

impl<'de> serde::de::Visitor<'de> for RawElements<'_> {
    type Value = Vec<&'de serde_json::value::RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::new();
        while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
            elements.push(raw);
            self.reached.set(elements.len());
            if elements.len() > self.max_events {
                return Err(serde::de::Error::custom("too many events"));
            }
        }
        Ok(elements)
    }
}

/// The top-level `id` of a JSON body, found in the same pass that checks the body is JSON —
/// without building a tree of the whole document (intake's hottest allocation otherwise).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BodyId(pub Option<String>);

impl<'de> serde::Deserialize<'de> for BodyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyIdVisitor)
    }
}

struct BodyIdVisitor;

impl<'de> serde::de::Visitor<'de> for BodyIdVisitor {
    type Value = BodyId;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<BodyId, A::Error> {
        let (mut id, mut log_id) = (None, None);
        let text = |value: Value| match value {
            Value::String(s) if !s.is_empty() => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "id" && id.is_none() {
                id = text(map.next_value::<Value>()?);
            } else if key == "log_id" && log_id.is_none() {
                // Auth0 Log Streams entries carry their identity as `log_id`.
                log_id = text(map.next_value::<Value>()?);
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(BodyId(id.or(log_id)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BodyId, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(BodyId(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_unit<E>(self) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }
}

/// A JSON value checked as strictly as the run will parse it (`serde_json::Value`: nesting at
/// most 128 deep, strings valid Unicode, no lone surrogates) without building it. `IgnoredAny`
/// would skip both checks, and intake would accept events that can never run.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}

/// Longest sender-supplied event id kept for deduplication.
const MAX_EVENT_KEY: usize = 256;

/// The id used to deduplicate deliveries: the body's `id` (Activepieces, GitLab, CloudEvents),
/// else the `webhook-id` header (Standard Webhooks), else a fresh id (never deduplicated).
pub fn event_key(body_id: BodyId, headers: &HeaderMap) -> String {
    keyed(body_id, || webhook_id(headers).map(str::to_string))
}

/// The id used to deduplicate element `index` of a batch: the same rules as [`event_key`] for
/// the element as a body, except that the `webhook-id` header names the whole request, so an
/// element without an `id` of its own is keyed `<webhook-id>#<index>`: a sender redelivering the
/// same batch under the same message id gets the same keys, hence duplicates, not new runs.
/// (A single event's key is the bare header, so it never collides with an element's.)
pub fn element_key(id: BodyId, headers: &HeaderMap, index: usize) -> String {
    keyed(id, || webhook_id(headers).map(|h| format!("{h}#{index}")))
}

fn webhook_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
}

/// The body's id, else the header's, when short enough to keep; else a fresh id.
fn keyed(body_id: BodyId, from_header: impl FnOnce() -> Option<String>) -> String {
    match body_id.0.or_else(from_header) {
        Some(key) if key.len() <= MAX_EVENT_KEY => key,
        _ => crate::store::new_id(),
    }
}

/// The header that carries a flow's fixed token, if its authentication uses one.
pub fn secret_header(auth: &crate::flow::WebhookAuth) -> Option<&str> {
    match auth {
        crate::flow::WebhookAuth::Header { header, .. } => Some(header),
        _ => None,
    }
}

/// Headers kept with the event (and visible to templates as `trigger.headers`), with credentials
/// removed: `authorization` and the flow's token header never reach storage or traces.
pub fn kept_headers(headers: &HeaderMap, secret_header: Option<&str>) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name == "authorization"
            || name == "cookie"
            || secret_header.is_some_and(|h| h.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if let Ok(v) = value.to_str() {
            map.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Regression (hardening I): whatever intake accepts, the run can parse.
    #[test]
    fn refuses_bodies_the_run_could_never_parse() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for body in [
            deep.as_str(),
            r#"{"a":"\ud800"}"#,
            r#"{"a":["x", {"b": "\udfff"}]}"#,
            &format!(r#"{{"id": "x", "deep": {}}}"#, deep),
        ] {
            assert!(
                serde_json::from_str::<Value>(body).is_err(),
                "the run refuses it"
            );
            assert!(
                matches!(
                    parse_body(None, body.as_bytes()),
                    Err(BodyError::InvalidJson(_))
                ),
                "{}",
                &body[..body.len().min(40)]
            );
        }
        let fine = r#"{"id": 7, "a": [[["\ud83d\ude00"]]], "b": {"c": null}}"#;
        assert_eq!(
            parse_body(None, fine.as_bytes()),
            Ok(BodyId(Some("7".into())))
        );
    }

    #[test]
    fn accepts_json_under_form_label_and_refuses_others() {
        let body = br#"{"id":"1"}"#;
        assert!(parse_body(Some("application/x-www-form-urlencoded"), body).is_ok());
        assert!(parse_body(Some("application/json; charset=utf-8"), body).is_ok());
        assert!(parse_body(Some("application/cloudevents+json"), body).is_ok());
        assert!(parse_body(None, body).is_ok());
        assert_eq!(
            parse_body(Some("text/xml"), body),
            Err(BodyError::NotJsonContentType("text/xml".into()))
        );
        assert_eq!(parse_body(None, b"  "), Err(BodyError::Empty));
        let err = parse_body(None, b"{\"a\":").unwrap_err();
        assert!(err.to_string().contains("EOF while parsing"), "{err}");
    }

    #[test]
    fn event_key_prefers_body_id_then_header() {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let id = |text: &str| parse_body(None, text.as_bytes()).unwrap();
        assert_eq!(
            event_key(id(r#"{"a": {"id": "inner"}, "id": "evt"}"#), &h),
            "evt"
        );
        assert_eq!(event_key(id(r#"{"id": 7}"#), &h), "7");
        // Auth0 Log Streams: the entry's log_id, unless the body also has an id.
        assert_eq!(
            event_key(id(r#"{"log_id": "900201", "data": {"type": "f"}}"#), &h),
            "900201"
        );
        assert_eq!(event_key(id(r#"{"log_id": "9", "id": "x"}"#), &h), "x");
        assert_eq!(event_key(id(r#"{"x": [1, {"id": 2}]}"#), &h), "msg_1");
        assert_eq!(event_key(id(r#"[{"id": "not top level"}]"#), &h), "msg_1");
        assert_eq!(event_key(id(r#""text""#), &h), "msg_1");
        let a = event_key(id("{}"), &HeaderMap::new());
        let b = event_key(id("{}"), &HeaderMap::new());
        assert_ne!(a, b);
    }

    fn batch<'a>(content_type: Option<&str>, body: &'a str) -> Vec<Element<'a>> {
        match parse_webhook(content_type, body.as_bytes(), 10) {
            Ok(Parsed::Batch(elements)) => elements,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn a_top_level_array_is_a_batch_of_its_elements_as_sent() {
        let body = " [ {\"id\": \"a\", \"n\": 1.50},\n{\"n\": [1, {\"id\": \"inner\"}]} , \"text\", 7, [1,2] ] ";
        for content_type in [None, Some("application/json"), Some("text/plain")] {
            let elements = batch(content_type, body);
            let texts: Vec<&str> = elements.iter().map(|e| e.text).collect();
            // Each element's own text, byte for byte (`1.50` stays `1.50`): what its run parses.
            assert_eq!(
                texts,
                [
                    r#"{"id": "a", "n": 1.50}"#,
                    r#"{"n": [1, {"id": "inner"}]}"#,
                    r#""text""#,
                    "7",
                    "[1,2]"
                ]
            );
            let ids: Vec<Option<&str>> = elements.iter().map(|e| e.id.0.as_deref()).collect();
            assert_eq!(ids, [Some("a"), None, None, None, None]);
        }
        // Anything but an array stays one event, as before batches existed.
        assert_eq!(
            parse_webhook(None, br#"{"id": "x", "list": [1]}"#, 10),
            Ok(Parsed::Single(BodyId(Some("x".into()))))
        );
        assert_eq!(
            parse_webhook(None, b"\"[not an array]\"", 10),
            Ok(Parsed::Single(BodyId(None)))
        );
        assert_eq!(
            parse_webhook(None, b" [ ] ", 10),
            Err(BodyError::EmptyBatch)
        );
        assert_eq!(parse_webhook(None, b"  ", 10), Err(BodyError::Empty));
    }

    #[test]
    fn json_lines_are_a_batch_and_blank_lines_are_not_events() {
        let body = "{\"id\": 1}\r\n\n   \n{\"b\": 2}  \n\t\n[3]\n";
        for content_type in [
            "application/x-ndjson",
            "application/jsonl; charset=utf-8",
            "Application/X-NDJSON",
        ] {
            let elements = batch(Some(content_type), body);
            let texts: Vec<&str> = elements.iter().map(|e| e.text).collect();
            assert_eq!(texts, [r#"{"id": 1}"#, r#"{"b": 2}"#, "[3]"]);
            assert_eq!(elements[0].id, BodyId(Some("1".into())));
        }
        // One line is a batch of one; only blank lines is an empty body.
        assert_eq!(batch(Some("application/x-ndjson"), "{}").len(), 1);
        assert_eq!(
            parse_webhook(Some("application/x-ndjson"), b"\n \r\n", 10),
            Err(BodyError::Empty)
        );
        // parse_body (one event, always) does not take JSON lines.
        assert!(matches!(
            parse_body(Some("application/x-ndjson"), b"{}"),
            Err(BodyError::NotJsonContentType(_))
        ));
    }

    #[test]
    fn a_bad_element_is_named_by_its_index() {
        let element = |result: Result<Parsed<'_>, BodyError>| match result {
            Err(BodyError::Element { index, line, .. }) => (index, line),
            other => panic!("expected an element error, got {other:?}"),
        };
        // A syntax error inside the array: the element it is in.
        assert_eq!(
            element(parse_webhook(
                None,
                br#"[{"a": 1}, {"b": 2}, {"c": }, {"d": 4}]"#,
                10
            )),
            (2, None)
        );
        // Cut short inside the third element.
        assert_eq!(
            element(parse_webhook(None, br#"[1, 2, {"c": "#, 10)),
            (2, None)
        );
        // A lone surrogate, valid to the array's syntax check, refused as its run would.
        let err = parse_webhook(None, br#"[{"a": 1}, {"b": 2}, {"c": "\ud800"}]"#, 10).unwrap_err();
        assert_eq!(element(Err(err.clone())), (2, None));
        assert!(
            err.to_string().starts_with("events[2]: not valid JSON"),
            "{err}"
        );
        // JSON lines: the index counts events (blank lines skipped), the line counts lines.
        let err = parse_webhook(
            Some("application/x-ndjson"),
            b"{\"a\": 1}\n\n{\"b\": 2}\n{\"c\": 3} trailing\n{}",
            10,
        )
        .unwrap_err();
        assert_eq!(element(Err(err.clone())), (2, Some(4)));
        assert!(
            err.to_string()
                .starts_with("events[2] (line 4): not valid JSON"),
            "{err}"
        );
        assert_eq!(
            element(parse_webhook(
                Some("application/x-ndjson"),
                b"{}\n\xff\xfe\n",
                10
            )),
            (1, Some(2))
        );
        // Two values on one line are not one event.
        assert_eq!(
            element(parse_webhook(Some("application/jsonl"), b"{} {}", 10)),
            (0, Some(1))
        );
        // After the array: the body as a whole is not JSON.
        assert!(matches!(
            parse_webhook(None, b"[1, 2] 3", 10),
            Err(BodyError::InvalidJson(_))
        ));
    }

    #[test]
    fn batch_elements_get_the_nesting_limit_a_run_has() {
        // A run parses each element alone: an element as deep as a run can parse is fine
        // inside the batch's array (one level more, counting it); one level deeper is refused,
        // as in a single body.
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let deepest = (1..1000)
            .take_while(|&d| serde_json::from_str::<Value>(&nested(d)).is_ok())
            .last()
            .expect("some nesting parses");
        assert!(deepest < 999, "serde_json caps nesting");
        let fine = format!("[1, {}]", nested(deepest));
        assert_eq!(batch(None, &fine)[1].text, nested(deepest));
        let deep = format!("[1, {}, 3]", nested(deepest + 1));
        assert!(matches!(
            parse_webhook(None, deep.as_bytes(), 10),
            Err(BodyError::Element { index: 1, .. })
        ));
        let lines = format!("1\n{}\n", nested(deepest + 1));
        assert!(matches!(
            parse_webhook(Some("application/x-ndjson"), lines.as_bytes(), 10),
            Err(BodyError::Element {
                index: 1,
                line: Some(2),
                ..
            })
        ));
        // Far deeper than any stack: refused, not a crash.
        let hostile = format!("[{}]", nested(100_000));
        assert!(matches!(
            parse_webhook(None, hostile.as_bytes(), 10),
            Err(BodyError::Element { index: 0, .. })
        ));
    }

    #[test]
    fn the_event_count_is_capped_for_arrays_and_lines() {
        let array = |n: usize| format!("[{}]", vec!["{}"; n].join(","));
        let lines = |n: usize| vec!["{}"; n].join("\n");
        assert!(matches!(
            parse_webhook(None, array(3).as_bytes(), 3),
            Ok(Parsed::Batch(e)) if e.len() == 3
        ));
        assert_eq!(
            parse_webhook(None, array(4).as_bytes(), 3),
            Err(BodyError::TooManyEvents { limit: 3 })
        );
        // Found at the element over the limit, even when a later one is broken.
        assert_eq!(
            parse_webhook(None, b"[1, 2, 3, 4, {", 3),
            Err(BodyError::TooManyEvents { limit: 3 })
        );
        let ndjson = Some("application/x-ndjson");
        assert!(parse_webhook(ndjson, lines(3).as_bytes(), 3).is_ok());
        assert_eq!(
            parse_webhook(ndjson, format!("{}\n\n", lines(4)).as_bytes(), 3),
            Err(BodyError::TooManyEvents { limit: 3 })
        );
        // Blank lines do not count.
        assert!(parse_webhook(ndjson, b"{}\n\n\n{}\n\n{}\n\n", 3).is_ok());
        assert!(
            BodyError::TooManyEvents { limit: 3 }
                .to_string()
                .contains("3-event limit (HOOKFLOW_MAX_BATCH_EVENTS)")
        );
    }

    #[test]
    fn element_keys_are_their_own_id_else_stable_per_request_and_position() {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let some = |id: &str| BodyId(Some(id.to_string()));
        assert_eq!(element_key(some("evt_9"), &h, 3), "evt_9");
        assert_eq!(element_key(BodyId(None), &h, 3), "msg_1#3");
        assert_eq!(element_key(BodyId(None), &h, 0), "msg_1#0");
        // Without a webhook-id: a fresh key every time (never deduplicated), as for a body.
        let none = HeaderMap::new();
        assert_ne!(
            element_key(BodyId(None), &none, 0),
            element_key(BodyId(None), &none, 0)
        );
        // Too long to keep: fresh.
        let mut long = HeaderMap::new();
        long.insert(
            "webhook-id",
            HeaderValue::from_str(&"m".repeat(MAX_EVENT_KEY)).unwrap(),
        );
        assert_ne!(element_key(BodyId(None), &long, 0).len(), MAX_EVENT_KEY + 2);
    }

    #[test]
    fn credentials_are_not_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        h.insert("x-token", HeaderValue::from_static("secret"));
        h.insert(
            "x-gitlab-audit-event-type",
            HeaderValue::from_static("user_created"),
        );
        let kept = kept_headers(&h, Some("X-Token"));
        assert_eq!(
            kept,
            serde_json::json!({"x-gitlab-audit-event-type": "user_created"})
        );
    }
}
