//! The `loki` plugin: pushes one log line to Grafana Loki.
//!
//! POST `{url}/loki/api/v1/push` with
//! `{"streams": [{"stream": <labels>, "values": [["<unix ns>", "<line>"]]}]}`; Loki answers 204.
//! The line is `line`, or `event` as JSON text (a string event is sent as is).

use std::time::{SystemTime, UNIX_EPOCH};

use hookflow_plugin_sdk::http::Request;
use hookflow_plugin_sdk::input::{Auth, Input};
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Map, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &["url", "labels", "line", "event", "tenant", "auth"];
const ENDPOINT: &str = "/loki/api/v1/push";

/// The exported plugin.
struct Loki;

impl Plugin for Loki {
    fn describe() -> Descriptor {
        Descriptor::new("loki", "0.1.0", "Push a log line to Grafana Loki")
            .input_schema(json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {
                        "type": "string",
                        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                        "description": "Loki base URL, e.g. http://loki:3100"
                    },
                    "labels": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": { "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$" },
                        "additionalProperties": { "type": ["string", "number", "boolean"] },
                        "default": { "source": "hookflow" }
                    },
                    "line": { "type": "string" },
                    "event": { "description": "Sent as a JSON line (any JSON)" },
                    "tenant": { "type": "string", "minLength": 1, "description": "X-Scope-OrgID" },
                    "auth": Auth::schema()
                },
                "oneOf": [ { "required": ["line"] }, { "required": ["event"] } ],
                "additionalProperties": false
            }))
            .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let url = endpoint(input.url("url")?);
        let labels = match input.opt_string_map("labels")? {
            None => vec![("source".to_string(), "hookflow".to_string())],
            Some(labels) if labels.is_empty() => {
                return Err(StepError::fatal(
                    "field `labels` must have at least one label",
                ));
            }
            Some(labels) => labels,
        };
        if let Some((name, _)) = labels.iter().find(|(n, _)| !valid_label_name(n)) {
            return Err(StepError::fatal(format!(
                "field `labels.{name}`: label names must match [a-zA-Z_][a-zA-Z0-9_]*"
            )));
        }
        let line = match (input.get("line"), input.get("event")) {
            (Some(_), Some(_)) => {
                return Err(StepError::fatal("give either `line` or `event`, not both"));
            }
            (Some(Value::String(line)), None) => line.clone(),
            (Some(_), None) => return Err(StepError::fatal("field `line` must be a string")),
            (None, Some(Value::String(s))) => s.clone(),
            (None, Some(event)) => event.to_string(),
            (None, None) => {
                return Err(StepError::fatal(
                    "missing required field `line` (or `event`)",
                ));
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| StepError::retryable("system clock is before 1970"))?;

        let stream: Map<String, Value> = labels
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let payload = json!({
            "streams": [{
                "stream": stream,
                "values": [[now.as_nanos().to_string(), line]]
            }]
        });
        let mut req = Request::post(url).json(&payload);
        if let Some(tenant) = input.opt_str("tenant")? {
            req = req.set_header("x-scope-orgid", tenant);
        }
        if let Some(auth) = input.opt_auth("auth")? {
            req = auth.apply(req);
        }
        let resp = req.send_ok()?;
        log(
            Level::Info,
            &format!("{} answered {}", req.target(), resp.status),
        );
        Ok(json!({ "ok": true, "status": resp.status }))
    }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The push endpoint under `base`, unless `base` already is it.
fn endpoint(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(ENDPOINT) {
        base.to_string()
    } else {
        format!("{base}{ENDPOINT}")
    }
}

export_plugin!(Loki);
