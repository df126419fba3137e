//! The `email` plugin: sends an e-mail through the SMTP server the administrator configures
//! (`HOOKFLOW_SMTP_URL`).
//!
//! The plugin only shapes the message; the host owns the SMTP connection and credentials and
//! sends only to recipients the step's `allowedRecipients` grant.

use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::mail::{self, Message};
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, export_plugin, json, log,
};

const FIELDS: &[&str] = &["from", "to", "cc", "replyTo", "subject", "text", "html"];
/// Longest subject accepted; RFC 5322 caps a header line at 998 characters.
const MAX_SUBJECT_CHARS: usize = 900;

/// The exported plugin.
struct Email;

impl Plugin for Email {
    fn describe() -> Descriptor {
        let address = json!({ "type": "string", "minLength": 3, "pattern": "@" });
        let addresses = json!({
            "anyOf": [address, { "type": "array", "items": address, "minItems": 1, "maxItems": 50 }]
        });
        Descriptor::new(
            "email",
            "0.1.0",
            "Send an e-mail through the SMTP server the administrator configures",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {
                "from": address,
                "to": addresses,
                "cc": addresses,
                "replyTo": address,
                "subject": { "type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_CHARS },
                "text": { "type": "string" },
                "html": { "type": "string" }
            },
            "required": ["to", "subject"],
            "anyOf": [ { "required": ["text"] }, { "required": ["html"] } ],
            "additionalProperties": false
        }))
        .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let to = addresses(&input, "to")?;
        if to.is_empty() {
            return Err(StepError::fatal("missing required field `to`"));
        }
        let cc = addresses(&input, "cc")?;
        let subject = input.str("subject")?;
        if subject.chars().count() > MAX_SUBJECT_CHARS {
            return Err(StepError::fatal(format!(
                "field `subject` is longer than {MAX_SUBJECT_CHARS} characters"
            )));
        }
        let html = input.opt_str("html")?.map(str::to_string);
        let text = match input.opt_str("text")? {
            Some(text) => text.to_string(),
            None if html.is_some() => String::new(),
            None => {
                return Err(StepError::fatal(
                    "missing required field `text` (or `html`)",
                ));
            }
        };
        let message = Message {
            from: input.opt_str("from")?.map(str::to_string),
            to: to.clone(),
            cc: cc.clone(),
            reply_to: input.opt_str("replyTo")?.map(str::to_string),
            subject: subject.to_string(),
            text,
            html,
        };
        let reply = mail::send(&message)?;
        log(
            Level::Info,
            &format!("sent \"{subject}\" to {} recipient(s)", to.len() + cc.len()),
        );
        Ok(json!({ "sent": true, "to": to, "cc": cc, "reply": reply }))
    }
}

/// A field holding one address or a list of them.
fn addresses(input: &Input<'_>, field: &str) -> Result<Vec<String>, StepError> {
    match input.get(field) {
        None => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) => many
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    StepError::fatal(format!("field `{field}[{i}]` must be a string"))
                })
            })
            .collect(),
        Some(_) => Err(StepError::fatal(format!(
            "field `{field}` must be an address or a list of addresses"
        ))),
    }
}

export_plugin!(Email);
