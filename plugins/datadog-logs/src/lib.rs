//! The `datadog-logs` plugin: sends one log entry to Datadog's logs intake (API v2).
//!
//! POST `https://http-intake.logs.<site>/api/v2/logs` with `DD-API-KEY: <key>` and a JSON array
//! of one entry: `{ddsource, ddtags, hostname, service, message, event}`. Datadog answers 202.

use hookflow_plugin_sdk::http::{self, Request};
use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Map, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &[
    "site",
    "url",
    "apiKey",
    "apiKeySecret",
    "message",
    "event",
    "service",
    "ddsource",
    "ddtags",
    "hostname",
];
const DEFAULT_SITE: &str = "datadoghq.com";
const PATH: &str = "/api/v2/logs";

/// The exported plugin.
struct DatadogLogs;

impl Plugin for DatadogLogs {
    fn describe() -> Descriptor {
        let string = json!({ "type": "string", "minLength": 1 });
        Descriptor::new("datadog-logs", "0.1.0", "Send a log entry to Datadog's logs intake")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "site": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9.-]+$",
                        "default": DEFAULT_SITE,
                        "description": "Datadog site, e.g. datadoghq.eu or us5.datadoghq.com"
                    },
                    "url": {
                        "type": "string",
                        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                        "description": "Intake URL overriding `site`; /api/v2/logs is appended if it has no path"
                    },
                    "apiKey": string,
                    "apiKeySecret": string,
                    "message": { "type": "string" },
                    "event": { "description": "Sent as the `event` attribute (any JSON)" },
                    "service": { "type": "string", "minLength": 1, "default": "hookflow" },
                    "ddsource": { "type": "string", "minLength": 1, "default": "hookflow" },
                    "ddtags": {
                        "description": "\"k:v,k2:v2\" or a list of tags",
                        "oneOf": [
                            { "type": "string" },
                            { "type": "array", "items": { "type": "string" } }
                        ]
                    },
                    "hostname": string
                },
                "allOf": [
                    { "oneOf": [ { "required": ["apiKey"] }, { "required": ["apiKeySecret"] } ] },
                    { "anyOf": [ { "required": ["event"] }, { "required": ["message"] } ] },
                    { "not": { "required": ["site", "url"] } }
                ],
                "additionalProperties": false
            }))
            .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let url = intake_url(&input)?;
        let api_key = input.credential("apiKey", "apiKeySecret")?;
        let event = input.get("event");
        let message = match (input.get("message"), event) {
            (Some(Value::String(m)), _) => m.clone(),
            (Some(_), _) => return Err(StepError::fatal("field `message` must be a string")),
            (None, Some(Value::String(s))) => s.clone(),
            (None, Some(e)) => e.to_string(),
            (None, None) => {
                return Err(StepError::fatal(
                    "missing required field `event` (or `message`)",
                ));
            }
        };

        let mut entry = Map::new();
        entry.insert(
            "ddsource".into(),
            json!(input.opt_str("ddsource")?.unwrap_or("hookflow")),
        );
        if let Some(tags) = tags(&input)? {
            entry.insert("ddtags".into(), json!(tags));
        }
        if let Some(hostname) = input.opt_str("hostname")? {
            entry.insert("hostname".into(), json!(hostname));
        }
        entry.insert(
            "service".into(),
            json!(input.opt_str("service")?.unwrap_or("hookflow")),
        );
        entry.insert("message".into(), json!(message));
        if let Some(event) = event {
            entry.insert("event".into(), event.clone());
        }

        let req = Request::post(url)
            .json(&Value::Array(vec![Value::Object(entry)]))
            .set_header("dd-api-key", api_key);
        let resp = req.send_ok()?;
        log(
            Level::Info,
            &format!("{} answered {}", req.target(), resp.status),
        );
        Ok(json!({ "ok": true, "status": resp.status }))
    }
}

fn intake_url(input: &Input) -> Result<String, StepError> {
    match (input.opt_str("site")?, input.has("url")) {
        (Some(_), true) => Err(StepError::fatal("give either `site` or `url`, not both")),
        (_, true) => {
            let url = input.url("url")?.trim();
            let rest = url.split_once("://").map_or("", |(_, r)| r);
            let has_path = rest
                .find(['/', '?'])
                .is_some_and(|i| !rest[i..].trim_end_matches('/').is_empty());
            Ok(if has_path {
                url.to_string()
            } else {
                http::join_url(url, PATH)
            })
        }
        (site, false) => {
            let site = site.unwrap_or(DEFAULT_SITE).trim().to_ascii_lowercase();
            if site
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            {
                return Err(StepError::fatal(
                    "field `site` must be a Datadog site host such as datadoghq.com",
                ));
            }
            Ok(format!("https://http-intake.logs.{site}{PATH}"))
        }
    }
}

fn tags(input: &Input) -> Result<Option<String>, StepError> {
    match input.get("ddtags") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_str().map(str::to_string).ok_or_else(|| {
                    StepError::fatal(format!("field `ddtags[{i}]` must be a string"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|tags| Some(tags.join(","))),
        Some(_) => Err(StepError::fatal(
            "field `ddtags` must be a string or a list of strings",
        )),
    }
}

export_plugin!(DatadogLogs);
