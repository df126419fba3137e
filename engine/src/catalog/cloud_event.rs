//! The trigger event as a CloudEvent 1.0, the shape Auth0 Actions code expects in
//! `event.message`. Auth0 Event Streams send CloudEvents already; GitLab, Activepieces and any
//! other JSON body are wrapped, with `type` taken from where the catalog says each source keeps
//! its event name, so one piece of JavaScript can handle every source alike.

use super::Catalog;
use serde_json::{Map, Value, json};

/// The header GitLab names its audit event type in.
const GITLAB_TYPE_HEADER: &str = "x-gitlab-audit-event-type";

/// Body fields that carry an event's own time, most specific first.
const TIME_FIELDS: &[&str] = &["time", "created", "created_at", "createdAt", "timestamp"];

/// `trigger` is the run's `{"body": ..., "headers": ...}`; `fallback_id` names the event when
/// neither the body nor a `webhook-id` header does (the run id is a good one).
pub fn cloud_event(catalog: &Catalog, trigger: &Value, fallback_id: &str) -> Value {
    let body = trigger.get("body").unwrap_or(&Value::Null);
    let headers = trigger.get("headers").unwrap_or(&Value::Null);
    if is_cloud_event(body) {
        return body.clone();
    }
    let header = |name: &str| headers.get(name).and_then(Value::as_str);
    let (source, kind) = match header(GITLAB_TYPE_HEADER) {
        Some(kind) => ("gitlab".to_string(), Some(kind.to_string())),
        None => identify(catalog, body),
    };
    let id = match body.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => header("webhook-id").unwrap_or(fallback_id).to_string(),
    };
    let time = TIME_FIELDS
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("id".into(), json!(id));
    event.insert(
        "type".into(),
        json!(kind.unwrap_or_else(|| "unknown".into())),
    );
    event.insert("source".into(), json!(source));
    event.insert("time".into(), json!(time));
    event.insert("datacontenttype".into(), json!("application/json"));
    event.insert("data".into(), body.clone());
    Value::Object(event)
}

/// A structured-mode CloudEvent: the four required attributes are there.
fn is_cloud_event(body: &Value) -> bool {
    ["specversion", "id", "source", "type"]
        .iter()
        .all(|attr| body.get(*attr).is_some_and(Value::is_string))
}

/// The source and event name of a body: the source whose catalog knows the name found at its
/// name path, else the first source whose path holds a string, else `hookflow` and none.
fn identify(catalog: &Catalog, body: &Value) -> (String, Option<String>) {
    let named = catalog
        .sources
        .iter()
        .filter_map(|source| source.event_name(body).map(|name| (source, name)));
    let mut first = None;
    for (source, name) in named {
        if source.find(name).is_some() {
            return (source.source.clone(), Some(name.to_string()));
        }
        first.get_or_insert((source.source.clone(), Some(name.to_string())));
    }
    first.unwrap_or_else(|| ("hookflow".into(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(body: Value, headers: Value) -> Value {
        cloud_event(
            Catalog::builtin(),
            &json!({"body": body, "headers": headers}),
            "run-1",
        )
    }

    #[test]
    fn an_auth0_cloud_event_passes_unchanged() {
        let body: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/auth0-cloudevent.json"
        ))
        .unwrap();
        assert_eq!(wrap(body.clone(), json!({})), body);
    }

    #[test]
    fn activepieces_and_gitlab_bodies_are_wrapped_with_their_type() {
        let activepieces = wrap(
            json!({"id": "ev1", "action": "flow.run.finished", "created": "2025-01-01T00:00:00Z", "data": {}}),
            json!({}),
        );
        assert_eq!(activepieces["type"], "flow.run.finished");
        assert_eq!(activepieces["source"], "activepieces");
        assert_eq!(activepieces["id"], "ev1");
        assert_eq!(activepieces["time"], "2025-01-01T00:00:00Z");
        assert_eq!(activepieces["specversion"], "1.0");
        assert_eq!(activepieces["data"]["action"], "flow.run.finished");

        let gitlab = wrap(
            json!({"id": 4810247, "event_type": "user_created", "created_at": "2024-05-01T10:00:00Z"}),
            json!({}),
        );
        assert_eq!(gitlab["type"], "user_created");
        assert_eq!(gitlab["source"], "gitlab");
        assert_eq!(gitlab["id"], "4810247");

        let by_header = wrap(
            json!({"id": "7", "details": {}}),
            json!({"x-gitlab-audit-event-type": "repository_git_operation"}),
        );
        assert_eq!(by_header["type"], "repository_git_operation");
        assert_eq!(by_header["source"], "gitlab");
    }

    #[test]
    fn any_other_json_gets_an_id_and_a_time() {
        let event = wrap(json!([1, 2]), json!({"webhook-id": "msg_1"}));
        assert_eq!(event["id"], "msg_1");
        assert_eq!(event["type"], "unknown");
        assert_eq!(event["source"], "hookflow");
        assert_eq!(event["data"], json!([1, 2]));
        assert!(event["time"].as_str().is_some_and(|t| t.len() >= 20));
        assert_eq!(wrap(json!({}), json!({}))["id"], "run-1");
    }
}
