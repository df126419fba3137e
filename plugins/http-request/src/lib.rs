//! The `http-request` plugin: sends one HTTP request and returns the response.
//!
//! The host performs the request (and TLS) and allows only the hosts the step lists in
//! `allowedHosts`. Redirects are not followed: a 3xx is returned like any other status.

use hookflow_plugin_sdk::http::{HttpError, Request};
use hookflow_plugin_sdk::input::{Auth, Input};
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &[
    "method",
    "url",
    "headers",
    "json",
    "body",
    "auth",
    "timeoutMs",
    "expectStatus",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The exported plugin.
struct HttpRequest;

impl Plugin for HttpRequest {
    fn describe() -> Descriptor {
        Descriptor::new("http-request", "0.1.0", "Send an HTTP request and return the response")
            .input_schema(json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "method": { "type": "string", "enum": METHODS, "default": "POST" },
                    "url": { "type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://" },
                    "headers": {
                        "type": "object",
                        "additionalProperties": { "type": ["string", "number", "boolean"] }
                    },
                    "json": { "description": "Sent as the JSON body (content-type application/json)" },
                    "body": { "type": "string", "description": "Sent as the body as is" },
                    "auth": Auth::schema(),
                    "timeoutMs": { "type": "integer", "minimum": 1, "maximum": 600000, "default": 30000 },
                    "expectStatus": {
                        "type": "array",
                        "items": { "type": "integer", "minimum": 100, "maximum": 599 },
                        "minItems": 1,
                        "description": "Statuses that count as success; default any 2xx"
                    }
                },
                "not": { "required": ["json", "body"] },
                "additionalProperties": false
            }))
            .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let method = input.opt_str("method")?.unwrap_or("POST");
        if !METHODS.contains(&method) {
            return Err(StepError::fatal(format!(
                "field `method` must be one of {}; got `{method}`",
                METHODS.join(", ")
            )));
        }
        let url = input.url("url")?;
        let mut req = Request::new(method, url);
        if let Some(timeout) = input.opt_int("timeoutMs", 1, 600_000)? {
            req = req.timeout_ms(timeout as u32);
        }
        for (name, value) in input.opt_string_map("headers")?.unwrap_or_default() {
            if name.trim().is_empty() {
                return Err(StepError::fatal("field `headers` has an empty header name"));
            }
            req = req.header(name, value);
        }

        match (input.raw("json"), input.raw("body")) {
            (Some(_), Some(_)) => {
                return Err(StepError::fatal("give either `json` or `body`, not both"));
            }
            (Some(value), None) => {
                if req.header_value("content-type").is_some() {
                    req = req.body(value.to_string());
                } else {
                    req = req.json(value);
                }
            }
            (None, Some(Value::String(text))) => {
                if req.header_value("content-type").is_none() {
                    req = req.set_header("content-type", "text/plain; charset=utf-8");
                }
                req = req.body(text.as_bytes());
            }
            (None, Some(_)) => return Err(StepError::fatal("field `body` must be a string")),
            (None, None) => {}
        }
        if let Some(auth) = input.opt_auth("auth")? {
            req = auth.apply(req);
        }

        let expect = match input.opt_array("expectStatus")? {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(StepError::fatal("field `expectStatus` must not be empty"));
            }
            Some(list) => Some(
                list.iter()
                    .map(|v| {
                        v.as_u64()
                            .filter(|s| (100..=599).contains(s))
                            .map(|s| s as u16)
                            .ok_or_else(|| {
                                StepError::fatal(
                                    "field `expectStatus` must list status codes from 100 to 599",
                                )
                            })
                    })
                    .collect::<Result<Vec<u16>, _>>()?,
            ),
        };

        let resp = req.send()?;
        let ok = match &expect {
            Some(codes) => codes.contains(&resp.status),
            None => resp.is_success(),
        };
        log(
            if ok { Level::Info } else { Level::Warn },
            &format!("{} answered {}", req.target(), resp.status),
        );
        if !ok {
            return Err(HttpError::status(&req.target(), &resp).into());
        }
        Ok(json!({
            "status": resp.status,
            "headers": resp.headers_object(),
            "body": resp.body_value(),
        }))
    }
}

export_plugin!(HttpRequest);
