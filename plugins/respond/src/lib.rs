//! The `respond` plugin: sets the HTTP response a `/sync` webhook caller receives when the run
//! finishes (status, headers, body), like n8n's "Respond to Webhook".
//!
//! A JSON `body` is sent as `application/json`; a string body as `text/plain; charset=utf-8`;
//! a `content-type` header overrides either. Runs started without `/sync` ignore the response
//! but still record it in the trace.

use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

const FIELDS: &[&str] = &["status", "headers", "body"];

/// The exported plugin.
struct Respond;

impl Plugin for Respond {
    fn describe() -> Descriptor {
        Descriptor::new(
            "respond",
            "0.1.0",
            "Set the HTTP response of a /sync webhook call",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {
                "status": { "type": "integer", "minimum": 200, "maximum": 599, "default": 200 },
                "headers": { "type": "object", "additionalProperties": { "type": "string" } },
                "body": {}
            },
            "additionalProperties": false
        }))
        .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let status = input.opt_int("status", 200, 599)?.unwrap_or(200) as u16;
        let mut headers = input.opt_string_map("headers")?.unwrap_or_default();
        let (body, default_type) = match input.raw("body") {
            None => (String::new(), None),
            Some(Value::String(text)) => (text.clone(), Some("text/plain; charset=utf-8")),
            Some(value) => (value.to_string(), Some("application/json")),
        };
        let has_type = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if let (false, Some(content_type)) = (has_type, default_type) {
            headers.push(("content-type".into(), content_type.into()));
        }
        hookflow_plugin_sdk::respond(status, &headers, &body)?;
        Ok(json!({ "status": status, "headers": headers_object(&headers), "bytes": body.len() }))
    }
}

fn headers_object(headers: &[(String, String)]) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

export_plugin!(Respond);
