//! Running a jq expression over a JSON value with jaq, entirely inside the component.

use hookflow_plugin_sdk::{StepError, Value};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

/// Results collected at most, so `range(infinite)` fails cleanly instead of exhausting memory.
const MAX_RESULTS: usize = 10_000;

/// Runs `expression` over `data` with `vars` bound as `$name`, returning every result.
pub fn run(
    expression: &str,
    vars: &[(String, Value)],
    data: &Value,
) -> Result<Vec<Value>, StepError> {
    let names: Vec<String> = vars.iter().map(|(name, _)| format!("${name}")).collect();
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: expression,
        path: (),
    };
    let modules = loader.load(&arena, program).map_err(|errors| {
        StepError::fatal(format!(
            "jq expression does not parse: {}",
            load_errors(&errors)
        ))
    })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(names.iter().map(String::as_str))
        .compile(modules)
        .map_err(|errors| {
            StepError::fatal(format!(
                "jq expression does not compile: {}",
                compile_errors(&errors)
            ))
        })?;
    let values = vars
        .iter()
        .map(|(_, value)| to_val(value))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new(values));
    let mut results = Vec::new();
    for result in filter.id.run((ctx, to_val(data)?)) {
        if results.len() == MAX_RESULTS {
            return Err(StepError::fatal(format!(
                "jq expression produced more than {MAX_RESULTS} results"
            )));
        }
        match result {
            Ok(value) => results.push(from_val(&value)?),
            Err(exception) => {
                let message = match exception.get_err() {
                    // `error("text")` reads as the text, like jq prints it; other values as JSON.
                    Ok(error) => match from_val(&error.into_val()) {
                        Ok(Value::String(text)) => format!("jq error: {text}"),
                        Ok(other) => format!("jq error: {other}"),
                        Err(e) => format!("jq error: {}", e.message),
                    },
                    Err(_) => "jq expression halted".to_string(),
                };
                return Err(StepError::fatal(message));
            }
        }
    }
    Ok(results)
}

fn to_val(value: &Value) -> Result<Val, StepError> {
    jaq_json::read::parse_single(value.to_string().as_bytes())
        .map_err(|e| StepError::fatal(format!("cannot read data as JSON: {e}")))
}

fn from_val(value: &Val) -> Result<Value, StepError> {
    serde_json::from_str(&value.to_string()).map_err(|e| {
        StepError::fatal(format!(
            "jq result is not representable as JSON (NaN, infinity or bytes?): {e}"
        ))
    })
}

/// One line per load error: what the parser expected and the text where it stopped.
fn load_errors<P>(errors: &jaq_core::load::Errors<&str, P>) -> String {
    use jaq_core::load::Error;
    let mut lines = Vec::new();
    for (_, error) in errors {
        match error {
            Error::Io(items) => lines.extend(items.iter().map(|(path, e)| format!("{path}: {e}"))),
            Error::Lex(items) => {
                lines.extend(items.iter().map(|(expect, at)| {
                    format!("expected {} at `{}`", expect.as_str(), snippet(at))
                }))
            }
            Error::Parse(items) => {
                lines.extend(items.iter().map(|(expect, at)| {
                    format!("expected {} at `{}`", expect.as_str(), snippet(at))
                }))
            }
        }
    }
    lines.join("; ")
}

fn compile_errors<P>(errors: &jaq_core::compile::Errors<&str, P>) -> String {
    use jaq_core::compile::Undefined;
    errors
        .iter()
        .flat_map(|(_, items)| items.iter())
        .map(|(name, undefined)| match undefined {
            Undefined::Mod => format!("undefined module {name}"),
            Undefined::Var => format!("undefined variable {name}"),
            Undefined::Label => format!("undefined label {name}"),
            Undefined::Filter(arity) => format!("undefined filter {name}/{arity}"),
            _ => format!("undefined {name}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The start of the text where parsing stopped, enough to find the spot.
fn snippet(at: &str) -> String {
    let mut text: String = at.chars().take(24).collect();
    if text.is_empty() {
        text.push_str("end of expression");
    }
    text
}
