//! The `slack` plugin: posts a message to Slack.
//!
//! Two ways in, chosen by the input:
//!
//! - an incoming webhook (`webhookUrl` or `webhookUrlSecret`): POST `{text, blocks}` to the
//!   webhook URL; Slack answers `ok` as text.
//! - the Web API (`token` or `tokenSecret`, plus `channel`): POST
//!   `{apiUrl}/chat.postMessage` with `Authorization: Bearer <token>` and
//!   `{channel, text, blocks, thread_ts}`; Slack answers `{"ok": true, "ts", "channel"}` or
//!   `{"ok": false, "error"}`.

use hookflow_plugin_sdk::http::{self, HttpError, HttpErrorKind, Request};
use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Map, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &[
    "webhookUrl",
    "webhookUrlSecret",
    "token",
    "tokenSecret",
    "channel",
    "text",
    "blocks",
    "threadTs",
    "apiUrl",
];
const DEFAULT_API_URL: &str = "https://slack.com/api";

/// The exported plugin.
struct Slack;

impl Plugin for Slack {
    fn describe() -> Descriptor {
        let string = json!({ "type": "string", "minLength": 1 });
        // Fields that only make sense with a token; a webhook message may not carry them.
        let token_only = json!({ "anyOf": [
            { "required": ["channel"] },
            { "required": ["threadTs"] },
            { "required": ["apiUrl"] }
        ] });
        Descriptor::new(
            "slack",
            "0.1.0",
            "Post a message to Slack (incoming webhook or chat.postMessage)",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {
                "webhookUrl": { "type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://" },
                "webhookUrlSecret": string,
                "token": string,
                "tokenSecret": string,
                "channel": string,
                "text": { "type": "string" },
                "blocks": { "type": "array", "items": { "type": "object" } },
                "threadTs": string,
                "apiUrl": { "type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "default": DEFAULT_API_URL }
            },
            "oneOf": [
                { "required": ["webhookUrl"], "not": token_only },
                { "required": ["webhookUrlSecret"], "not": token_only },
                { "required": ["token", "channel"] },
                { "required": ["tokenSecret", "channel"] }
            ],
            "anyOf": [ { "required": ["text"] }, { "required": ["blocks"] } ],
            "additionalProperties": false
        }))
        .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let webhook = input.has("webhookUrl") || input.has("webhookUrlSecret");
        let api = input.has("token") || input.has("tokenSecret");
        if webhook && api {
            return Err(StepError::fatal(
                "give either a webhook (`webhookUrl`/`webhookUrlSecret`) or a token \
                 (`token`/`tokenSecret`), not both",
            ));
        }
        if !webhook && !api {
            return Err(StepError::fatal(
                "missing required field `webhookUrl` (or `webhookUrlSecret`, or \
                 `token`/`tokenSecret` with `channel`)",
            ));
        }

        let text = match input.get("text") {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => return Err(StepError::fatal("field `text` must be a string")),
        };
        let blocks = input.opt_array("blocks")?;
        if let Some(i) = blocks.into_iter().flatten().position(|b| !b.is_object()) {
            return Err(StepError::fatal(format!(
                "field `blocks[{i}]` must be an object"
            )));
        }
        if text.is_none_or(str::is_empty) && blocks.is_none_or(Vec::is_empty) {
            return Err(StepError::fatal(
                "missing required field `text` (or non-empty `blocks`)",
            ));
        }
        let mut payload = Map::new();
        if let Some(text) = text {
            payload.insert("text".into(), json!(text));
        }
        if let Some(blocks) = blocks {
            payload.insert("blocks".into(), Value::Array(blocks.clone()));
        }

        if webhook {
            for field in ["channel", "threadTs", "apiUrl"] {
                if input.has(field) {
                    return Err(StepError::fatal(format!(
                        "field `{field}` is only used with `token`/`tokenSecret`, not with a webhook"
                    )));
                }
            }
            let url = input.url_credential("webhookUrl", "webhookUrlSecret")?;
            let req = Request::post(url).json(&Value::Object(payload));
            let resp = req.send_ok()?;
            log(
                Level::Info,
                &format!("{} answered {}", req.target(), resp.status),
            );
            return Ok(json!({ "ok": true }));
        }

        let token = input.credential("token", "tokenSecret")?;
        let channel = input.str("channel")?;
        let api_url = match input.opt_str("apiUrl")? {
            Some(_) => input.url("apiUrl")?,
            None => DEFAULT_API_URL,
        };
        payload.insert("channel".into(), json!(channel));
        if let Some(ts) = input.opt_str("threadTs")? {
            payload.insert("thread_ts".into(), json!(ts));
        }
        let req = Request::post(http::join_url(api_url, "chat.postMessage"))
            .json(&Value::Object(payload))
            .set_header("content-type", "application/json; charset=utf-8")
            .bearer(&token);
        let resp = req.send_ok()?;
        let Some(answer) = resp.json() else {
            return Err(HttpError::new(
                HttpErrorKind::Transport,
                format!(
                    "{} answered {} with a body that is not JSON: {}",
                    req.target(),
                    resp.status,
                    http::body_snippet(&resp)
                ),
            )
            .into());
        };
        if answer["ok"] != Value::Bool(true) {
            let error = answer["error"].as_str().unwrap_or("unknown error");
            let message = format!("Slack chat.postMessage failed: {error}");
            return Err(if error == "ratelimited" {
                StepError::retryable(message)
            } else {
                StepError::fatal(message)
            });
        }
        if let Some(warning) = answer["warning"].as_str() {
            log(Level::Warn, &format!("Slack warning: {warning}"));
        }
        log(
            Level::Info,
            &format!("posted to Slack channel {channel} (ts {})", answer["ts"]),
        );
        let mut out = Map::new();
        out.insert("ok".into(), Value::Bool(true));
        for key in ["ts", "channel"] {
            if let Some(v) = answer.get(key).filter(|v| !v.is_null()) {
                out.insert(key.into(), v.clone());
            }
        }
        Ok(Value::Object(out))
    }
}

export_plugin!(Slack);
