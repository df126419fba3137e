//! The `transform` plugin: builds a JSON object from templated input.
//!
//! All the work happens in the host, which renders the templates in the step input before the
//! call; returning the rendered object as the output lets later steps reference it as
//! `steps.<name>.output`.

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// The exported plugin.
struct Transform;

impl Plugin for Transform {
    fn describe() -> Descriptor {
        Descriptor::new(
            "transform",
            "0.1.0",
            "Build a JSON object from templated input",
        )
        .input_schema(json!({ "type": "object" }))
        .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        match input {
            Value::Object(_) => Ok(input),
            other => Err(StepError::fatal(format!(
                "input must be an object, got {}",
                kind(&other)
            ))),
        }
    }
}

/// JSON type name for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

export_plugin!(Transform);
