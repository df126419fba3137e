//! The `first-seen` plugin: tells whether a key is new to this flow, remembering it durably
//! (the host `memory` capability). A router on `steps.<name>.output.firstSeen` then picks the
//! "new" case: a sign-in from an IP the user never used, an alert not sent before.

use hookflow_plugin_sdk::input::Input;
use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// The exported plugin.
struct FirstSeen;

impl Plugin for FirstSeen {
    fn describe() -> Descriptor {
        Descriptor::new(
            "first-seen",
            "0.1.0",
            "Tell whether a key (a user's IP, an alert id) is seen for the first time by this flow",
        )
        .input_schema(json!({
            "type": "object",
            "properties": { "key": { "type": "string", "minLength": 1, "maxLength": 512 } },
            "required": ["key"],
            "additionalProperties": false
        }))
        .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, &["key"])?;
        let key = input.str("key")?;
        let first_seen = hookflow_plugin_sdk::remember(key)?;
        Ok(json!({ "firstSeen": first_seen, "key": key }))
    }
}

export_plugin!(FirstSeen);
