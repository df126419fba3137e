//! The `splunk-hec` plugin: sends one event to Splunk's HTTP Event Collector.
//!
//! POST `{url}/services/collector/event` with `Authorization: Splunk <token>` and
//! `{"event", "sourcetype", "source", "index", "host", "time", "fields"}`; Splunk answers
//! `{"text": "Success", "code": 0}`, and any other code is an error.

use hookflow_plugin_sdk::http::{self, HttpError, HttpErrorKind, Request};
use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Map, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &[
    "url",
    "token",
    "tokenSecret",
    "event",
    "sourcetype",
    "source",
    "index",
    "host",
    "time",
    "fields",
];
const DEFAULT_SOURCETYPE: &str = "hookflow:audit";
const ENDPOINT: &str = "/services/collector/event";
/// HEC's "server is busy" code; worth retrying.
const CODE_BUSY: i64 = 9;

/// The exported plugin.
struct SplunkHec;

impl Plugin for SplunkHec {
    fn describe() -> Descriptor {
        let string = json!({ "type": "string", "minLength": 1 });
        Descriptor::new(
            "splunk-hec",
            "0.1.0",
            "Send an event to Splunk's HTTP Event Collector",
        )
        .input_schema(json!({
            "type": "object",
            "required": ["url", "event"],
            "properties": {
                "url": {
                    "type": "string",
                    "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
                    "description": "HEC base URL, e.g. https://splunk.example.com:8088"
                },
                "token": string,
                "tokenSecret": string,
                "event": { "description": "Event payload (any JSON)" },
                "sourcetype": { "type": "string", "minLength": 1, "default": DEFAULT_SOURCETYPE },
                "source": string,
                "index": string,
                "host": string,
                "time": { "type": "number", "description": "Epoch seconds" },
                "fields": {
                    "type": "object",
                    "description": "Indexed fields",
                    "additionalProperties": { "type": ["string", "number", "boolean", "array"] }
                }
            },
            "oneOf": [ { "required": ["token"] }, { "required": ["tokenSecret"] } ],
            "additionalProperties": false
        }))
        .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let url = endpoint(input.url("url")?);
        let token = input.credential("token", "tokenSecret")?;
        let event = input
            .get("event")
            .ok_or_else(|| StepError::fatal("missing required field `event`"))?;

        let mut body = Map::new();
        body.insert("event".into(), event.clone());
        body.insert(
            "sourcetype".into(),
            json!(input.opt_str("sourcetype")?.unwrap_or(DEFAULT_SOURCETYPE)),
        );
        for field in ["source", "index", "host"] {
            if let Some(v) = input.opt_str(field)? {
                body.insert(field.into(), json!(v));
            }
        }
        if let Some(time) = input.opt_f64("time")? {
            if time < 0.0 {
                return Err(StepError::fatal(
                    "field `time` must be epoch seconds (>= 0)",
                ));
            }
            body.insert("time".into(), json!(time));
        }
        if let Some(fields) = input.opt_object("fields")? {
            body.insert("fields".into(), Value::Object(fields.clone()));
        }

        let req = Request::post(url)
            .json(&Value::Object(body))
            .set_header("authorization", format!("Splunk {token}"));
        let resp = req.send()?;
        let answer = resp.json().unwrap_or(Value::Null);
        let code = answer["code"].as_i64();
        let text = answer["text"].as_str().unwrap_or("");
        if !resp.is_success() {
            let mut err = HttpError::status(&req.target(), &resp);
            if let Some(code) = code {
                err.message = format!(
                    "{} answered {}: {text} (HEC code {code})",
                    req.target(),
                    resp.status
                );
            }
            return Err(err.into());
        }
        match code {
            Some(0) => {}
            Some(code) => {
                let message = format!("Splunk HEC rejected the event: {text} (code {code})");
                return Err(if code == CODE_BUSY {
                    StepError::retryable(message)
                } else {
                    StepError::fatal(message)
                });
            }
            None => {
                return Err(HttpError::new(
                    HttpErrorKind::Transport,
                    format!(
                        "{} answered {} without a HEC result: {}",
                        req.target(),
                        resp.status,
                        http::body_snippet(&resp)
                    ),
                )
                .into());
            }
        }
        log(Level::Info, &format!("{} accepted the event", req.target()));
        let mut out = json!({ "ok": true, "code": 0, "text": text });
        if let Some(ack) = answer.get("ackId") {
            out["ackId"] = ack.clone();
        }
        Ok(out)
    }
}

/// The event endpoint under `base`, unless `base` already is it.
fn endpoint(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(ENDPOINT) {
        base.to_string()
    } else if base.ends_with("/services/collector") {
        format!("{base}/event")
    } else {
        format!("{base}{ENDPOINT}")
    }
}

export_plugin!(SplunkHec);
