//! The `log` plugin: records a message in the run trace.
//!
//! The host renders templates in `message` before the call, so a flow can note what happened
//! (`"Run {{trigger.body.data.flowRun.id}} failed"`) without a side effect outside the run.

use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, export_plugin, json, log,
};

/// The exported plugin.
struct Log;

impl Plugin for Log {
    fn describe() -> Descriptor {
        Descriptor::new("log", "0.1.0", "Record a message in the run trace")
            .input_schema(json!({
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": { "type": "string" },
                    "level": {
                        "type": "string",
                        "enum": ["debug", "info", "warn", "error"],
                        "default": "info"
                    }
                },
                "additionalProperties": false
            }))
            .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        // The host validates against the schema, but a plugin must not trust that: check again
        // and name the offending field.
        let Value::Object(fields) = &input else {
            return Err(StepError::fatal("input must be an object"));
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "message" && *k != "level") {
            return Err(StepError::fatal(format!(
                "unknown field `{unknown}` (expected `message` and optionally `level`)"
            )));
        }
        let message = match fields.get("message") {
            Some(Value::String(m)) => m.as_str(),
            Some(_) => return Err(StepError::fatal("field `message` must be a string")),
            None => return Err(StepError::fatal("missing required field `message`")),
        };
        let level = match fields.get("level") {
            None => Level::Info,
            Some(Value::String(l)) => Level::parse(l).ok_or_else(|| {
                StepError::fatal(format!(
                    "field `level` must be one of debug, info, warn, error; got `{l}`"
                ))
            })?,
            Some(_) => {
                return Err(StepError::fatal(
                    "field `level` must be one of debug, info, warn, error",
                ));
            }
        };

        log(level, message);
        Ok(json!({ "message": message, "level": level.as_str() }))
    }
}

export_plugin!(Log);
