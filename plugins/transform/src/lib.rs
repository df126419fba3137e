//! The `transform` plugin: reshapes JSON, with a jq expression or with templates.
//!
//! - With a `jq` field, the expression runs over `data` (any JSON; `null` when absent) inside
//!   the component, using jaq (a Rust implementation of jq), so no jq binary or network is
//!   needed. The output is the expression's single result; `"all": true` collects every result
//!   into an array instead. Optional `vars` become jq variables (`{"limit": 3}` is `$limit`).
//! - Without `jq`, the host has already rendered the templates in the input object, and that
//!   object is the output, so later steps can reference it as `steps.<name>.output`.

mod jq;

use hookflow_plugin_sdk::{Context, Descriptor, Plugin, StepError, Value, export_plugin, json};

/// Fields of the jq form; any other field there is a mistake worth reporting.
const JQ_FIELDS: &[&str] = &["jq", "data", "all", "vars"];

/// The exported plugin.
struct Transform;

impl Plugin for Transform {
    fn describe() -> Descriptor {
        Descriptor::new(
            "transform",
            "0.1.0",
            "Reshape JSON with a jq expression, or build an object from templated input",
        )
        .input_schema(json!({
            "type": "object",
            "if": { "required": ["jq"] },
            "then": {
                "properties": {
                    "jq": { "type": "string", "minLength": 1 },
                    "data": {},
                    "all": { "type": "boolean" },
                    "vars": { "type": "object" }
                },
                "additionalProperties": false
            }
        }))
        .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let Value::Object(fields) = input else {
            return Err(StepError::fatal(format!(
                "input must be an object, got {}",
                kind(&input)
            )));
        };
        let Some(expression) = fields.get("jq") else {
            return Ok(Value::Object(fields));
        };
        if let Some(unknown) = fields.keys().find(|k| !JQ_FIELDS.contains(&k.as_str())) {
            return Err(StepError::fatal(format!(
                "unknown field `{unknown}` next to `jq` (expected `jq`, `data`, `all`, `vars`)"
            )));
        }
        let Value::String(expression) = expression else {
            return Err(StepError::fatal("field `jq` must be a string"));
        };
        let all = match fields.get("all") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(all)) => *all,
            Some(_) => return Err(StepError::fatal("field `all` must be a boolean")),
        };
        let vars = match fields.get("vars") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(vars)) => vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => return Err(StepError::fatal("field `vars` must be an object")),
        };
        let data = fields.get("data").cloned().unwrap_or(Value::Null);
        let mut results = jq::run(expression, &vars, &data)?;
        if all {
            return Ok(Value::Array(results));
        }
        match results.len() {
            0 => Ok(Value::Null),
            1 => Ok(results.remove(0)),
            n => Err(StepError::fatal(format!(
                "jq expression produced {n} results; wrap it in [ ... ] or set \"all\": true"
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
