//! The `filter` plugin: ends the run early (status SUCCEEDED) unless a condition holds.
//!
//! The host renders templates first, so a flow compares rendered values, e.g.
//! `value: "{{trigger.body.data.flowRun.status}}"`, `operator: equals`, `compareTo: FAILED`.
//! Comparisons are loose where templates make them so: a string and a number or boolean are
//! equal when their text is (`"3"` equals `3`, `"true"` equals `true`).

use hookflow_plugin_sdk::input::{Input, scalar_text};
use hookflow_plugin_sdk::{
    Context, Descriptor, Level, Plugin, StepError, Value, end_run, export_plugin, json, log,
};

const FIELDS: &[&str] = &["value", "operator", "compareTo", "reason"];
const OPERATORS: &[&str] = &["equals", "notEquals", "contains", "exists", "isTrue"];

/// The exported plugin.
struct Filter;

impl Plugin for Filter {
    fn describe() -> Descriptor {
        Descriptor::new(
            "filter",
            "0.1.0",
            "End the run early unless a condition holds",
        )
        .input_schema(json!({
            "type": "object",
            "required": ["value", "operator"],
            "properties": {
                "value": { "description": "The value to test (usually a rendered template)" },
                "operator": { "type": "string", "enum": OPERATORS },
                "compareTo": { "description": "Required for equals, notEquals and contains" },
                "reason": { "type": "string", "description": "Recorded on the run when it ends here" }
            },
            "additionalProperties": false
        }))
        .side_effects(false)
    }

    fn run(_ctx: Context, input: Value) -> Result<Value, StepError> {
        let input = Input::new(&input, FIELDS)?;
        let operator = input.str("operator")?;
        let value = input.raw("value").unwrap_or(&Value::Null);
        let compare_to = || {
            input.raw("compareTo").ok_or_else(|| {
                StepError::fatal(format!(
                    "missing required field `compareTo` (operator `{operator}` needs it)"
                ))
            })
        };
        let reason = input.opt_str("reason")?;
        let passed = match operator {
            "equals" => loose_eq(value, compare_to()?),
            "notEquals" => !loose_eq(value, compare_to()?),
            "contains" => contains(value, compare_to()?),
            "exists" => !matches!(value, Value::Null) && value != &Value::String(String::new()),
            "isTrue" => is_true(value),
            other => {
                return Err(StepError::fatal(format!(
                    "field `operator` must be one of {}; got `{other}`",
                    OPERATORS.join(", ")
                )));
            }
        };
        if passed {
            log(Level::Debug, &format!("filter `{operator}` passed"));
            return Ok(json!({ "passed": true }));
        }
        let reason = reason.unwrap_or("filter: condition not met");
        log(
            Level::Info,
            &format!("filter `{operator}` not met; ending the run: {reason}"),
        );
        end_run(reason);
        Ok(json!({ "passed": false, "reason": reason }))
    }
}

/// JSON equality, except that numbers compare by value and a string equals a number or boolean
/// with the same text.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::String(s), other @ (Value::Number(_) | Value::Bool(_)))
        | (other @ (Value::Number(_) | Value::Bool(_)), Value::String(s)) => {
            let s = s.trim();
            match other {
                Value::Number(n) => s.parse::<f64>().ok() == n.as_f64(),
                _ => scalar_text(other).as_deref() == Some(s),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| loose_eq(a, b))
        }
        _ => a == b,
    }
}

/// A string contains a substring, an array an element (loosely equal), an object a key.
fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::String(s) => scalar_text(needle).is_some_and(|n| s.contains(n.as_str())),
        Value::Array(items) => items.iter().any(|item| loose_eq(item, needle)),
        Value::Object(map) => needle.as_str().is_some_and(|k| map.contains_key(k)),
        _ => false,
    }
}

/// `true`, a non-zero number, or the text `true`, `yes`, `on` or `1` (any case).
fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "on" | "1"
            )
        }
        _ => false,
    }
}

export_plugin!(Filter);
