//! The `teams` plugin: posts an Adaptive Card message to a Microsoft Teams webhook (a Workflows
//! "post to a channel when a webhook request is received" URL, or a classic incoming webhook).
//!
//! The card is built from `title`, `text` and `facts`, or taken as is from `card`.

use hookflow_plugin_sdk::http::{HttpError, HttpErrorKind, Request};
use hookflow_plugin_sdk::input::{Input, scalar_text};
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &[
    "webhookUrl",
    "webhookUrlSecret",
    "title",
    "text",
    "facts",
    "card",
];

/// The exported plugin.
struct Teams;

impl Plugin for Teams {
    fn describe() -> Descriptor {
        Descriptor::new(
            "teams",
            "0.1.0",
            "Post an Adaptive Card message to a Microsoft Teams webhook",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {
                "webhookUrl": { "type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://" },
                "webhookUrlSecret": { "type": "string", "minLength": 1 },
                "title": { "type": "string" },
                "text": { "type": "string", "minLength": 1 },
                "facts": {
                    "type": "object",
                    "additionalProperties": { "type": ["string", "number", "boolean"] }
                },
                "card": { "type": "object", "description": "Adaptive Card used as is instead of title/text/facts" }
            },
            "oneOf": [ { "required": ["webhookUrl"] }, { "required": ["webhookUrlSecret"] } ],
            "anyOf": [ { "required": ["text"] }, { "required": ["card"] } ],
            "additionalProperties": false
        }))
        .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let content = match input.opt_object("card")? {
            Some(card) => {
                if let Some(field) = ["title", "text", "facts"]
                    .into_iter()
                    .find(|f| input.has(f))
                {
                    return Err(StepError::fatal(format!(
                        "give either `card` or `title`/`text`/`facts`; `{field}` cannot be combined with `card`"
                    )));
                }
                Value::Object(card.clone())
            }
            None => build_card(&input)?,
        };
        let url = input.url_credential("webhookUrl", "webhookUrlSecret")?;
        let payload = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": content
            }]
        });
        let req = Request::post(url).json(&payload);
        let resp = req.send_ok()?;
        // Classic connectors answer 200 with an error text instead of a 4xx in some cases.
        let text = resp.text();
        if text.contains("Webhook message delivery failed") {
            let kind = if text.contains("429") {
                HttpErrorKind::Status(429)
            } else {
                HttpErrorKind::Status(400)
            };
            return Err(
                HttpError::new(kind, format!("{} failed: {}", req.target(), text.trim())).into(),
            );
        }
        log(
            Level::Info,
            &format!("{} answered {}", req.target(), resp.status),
        );
        Ok(json!({ "ok": true, "status": resp.status }))
    }
}

fn build_card(input: &Input) -> Result<Value, StepError> {
    let text = input.str("text")?;
    let mut body = Vec::new();
    let title = match input.get("title") {
        None => None,
        Some(Value::String(t)) => Some(t.trim()).filter(|t| !t.is_empty()),
        Some(_) => return Err(StepError::fatal("field `title` must be a string")),
    };
    if let Some(title) = title {
        body.push(json!({
            "type": "TextBlock",
            "text": title,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true
        }));
    }
    body.push(json!({ "type": "TextBlock", "text": text, "wrap": true }));
    let facts = input.opt_object("facts")?.filter(|f| !f.is_empty());
    if let Some(facts) = facts {
        let facts = facts
            .iter()
            .map(|(name, value)| {
                let value = scalar_text(value).ok_or_else(|| {
                    StepError::fatal(format!("field `facts.{name}` must be a string"))
                })?;
                Ok(json!({ "title": name, "value": value }))
            })
            .collect::<Result<Vec<_>, StepError>>()?;
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    Ok(json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body
    }))
}

export_plugin!(Teams);
