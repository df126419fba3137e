//! `greet@2.0.0`: one of two versions of the same test plugin, which tests install side by
//! side to show that each flow runs the version it pins.

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

struct Greet;

impl Plugin for Greet {
    fn describe() -> Descriptor {
        Descriptor::new("greet", "2.0.0", "Greets someone (version 2)").input_schema(json!({
            "type": "object",
            "properties": { "who": { "type": "string" } },
            "required": ["who"]
        }))
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let who = input["who"].as_str().unwrap_or_default();
        Ok(json!({ "greeting": format!("good day, {who}"), "version": 2 }))
    }
}

export_plugin!(Greet);
