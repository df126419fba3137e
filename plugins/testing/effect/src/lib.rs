//! The `effect` test plugin: declares side effects, so test runs must skip it unless they are
//! live. Returns `{"sent": <input>}` when it does run.

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// The exported plugin.
struct Effect;

impl Plugin for Effect {
    fn describe() -> Descriptor {
        Descriptor::new(
            "effect",
            "0.1.0",
            "Pretend to change the outside world (tests only)",
        )
        .input_schema(json!({ "type": "object" }))
        .side_effects(true)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        Ok(json!({ "sent": input }))
    }
}

export_plugin!(Effect);
