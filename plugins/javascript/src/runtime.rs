//! One step's JavaScript run: a fresh Boa context, the globals a pasted Auth0 Event Stream
//! Action expects, the user's code, its handler called with `(event, api)`, and the settled
//! result turned into the step's output.
//!
//! Each step gets its own context (the component itself is instantiated per step too), so
//! nothing a script does survives into another run except through `api.cache`.

use crate::executor::{Executor, Outcome};
use crate::fetch::HostFetcher;
use crate::globals::{self, describe};
use crate::host::Host;
use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{
    Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue, NativeFunction, Script,
    Source, js_string,
};
use boa_runtime::extensions::FetchExtension;
use hookflow_plugin_sdk::{CacheError, Level, StepError, Value, json};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// Console lines a step may write; one more line then says how many were dropped.
pub const MAX_LOG_LINES: usize = 100;
/// Longest console line, in bytes; longer ones are cut.
pub const MAX_LOG_LINE_BYTES: usize = 4096;
/// Largest `code`, in bytes (the input schema says the same).
pub const MAX_CODE_BYTES: usize = 102_400;
/// The file name stack traces and syntax errors use for the user's code.
pub const SCRIPT_NAME: &str = "step.js";

/// The run context a script sees as `event.run`, and whether `fetch` may really send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    pub flow_id: String,
    pub step_name: String,
    pub attempt: u32,
    pub test_run: bool,
}

/// State the native functions share, reachable from the Boa context.
pub struct Shared {
    pub host: Rc<dyn Host>,
    pub test_run: bool,
    log_budget: RefCell<LogBudget>,
}

#[derive(Default)]
struct LogBudget {
    written: usize,
    dropped: usize,
}

impl Shared {
    fn new(host: Rc<dyn Host>, test_run: bool) -> Self {
        Shared {
            host,
            test_run,
            log_budget: RefCell::new(LogBudget::default()),
        }
    }

    /// Writes one line to the run trace within the step's budget: at most [`MAX_LOG_LINES`]
    /// lines of at most [`MAX_LOG_LINE_BYTES`] each, so a chatty loop cannot flood the trace.
    pub fn log(&self, level: Level, line: &str) {
        let mut budget = self.log_budget.borrow_mut();
        if budget.written >= MAX_LOG_LINES {
            budget.dropped += 1;
            return;
        }
        budget.written += 1;
        drop(budget);
        self.host.log(level, &cap_line(line));
    }

    /// Says how many lines the budget dropped, if any; called once when the step ends.
    fn finish_logs(&self) {
        let dropped = self.log_budget.borrow().dropped;
        if dropped > 0 {
            self.host.log(
                Level::Warn,
                &format!(
                    "{dropped} more console line(s) dropped: a step keeps at most \
                     {MAX_LOG_LINES} lines"
                ),
            );
        }
    }
}

/// Cuts `line` to [`MAX_LOG_LINE_BYTES`] on a character boundary, saying so.
fn cap_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= MAX_LOG_LINE_BYTES {
        return line.into();
    }
    let suffix = format!(" … [cut, {} bytes in all]", line.len());
    let mut end = MAX_LOG_LINE_BYTES - suffix.len();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &line[..end]).into()
}

/// How native functions find [`Shared`]: context data, so no closure has to capture it.
#[derive(Clone)]
struct SharedRef(Rc<Shared>);

/// The step's [`Shared`] state, for native functions.
pub(crate) fn shared(context: &Context) -> JsResult<Rc<Shared>> {
    context
        .get_data::<SharedRef>()
        .map(|s| s.0.clone())
        .ok_or_else(|| {
            JsNativeError::error()
                .with_message("hookflow runtime not set up")
                .into()
        })
}

/// Runs one step: `code` with its handler called on the host's event. `configuration` is the
/// step input without `code`.
pub fn run(
    host: Rc<dyn Host>,
    info: &RunInfo,
    code: &str,
    configuration: Value,
) -> Result<Value, StepError> {
    let shared = Rc::new(Shared::new(host, info.test_run));
    let result = run_in_context(&shared, info, code, configuration);
    shared.finish_logs();
    result
}

fn run_in_context(
    shared: &Rc<Shared>,
    info: &RunInfo,
    code: &str,
    configuration: Value,
) -> Result<Value, StepError> {
    let (mut context, executor) = new_context(shared)?;
    let context = &mut context;

    // 1. The user's code, as a CommonJS-style script.
    let source = Source::from_bytes(code).with_path(Path::new(SCRIPT_NAME));
    let script = Script::parse(source, None, context)
        .map_err(|e| StepError::fatal(syntax_error(&native_message(e, context), code)))?;
    script.evaluate(context).map_err(|e| {
        StepError::fatal(format!(
            "the code threw while loading: {}",
            describe(e, context)
        ))
    })?;

    // 2. Its handler.
    let handler = find_handler(context).map_err(|e| StepError::fatal(e.to_string()))?;
    let Some(handler) = handler else {
        return Err(StepError::fatal(
            "the code must set exports.onExecuteEventStream or exports.handler to a function",
        ));
    };

    // 3. Called with (event, api); a promise is driven until it settles.
    let event = build_event(shared, info, configuration, context)?;
    let api = build_api(context);
    let returned = handler.call(&JsValue::undefined(), &[event, api], context);
    let value = match returned {
        Err(e) => return Err(StepError::retryable(describe(e, context))),
        Ok(value) => value,
    };
    let value = match value.as_promise() {
        None => {
            drive(&executor, context, &|| true)?;
            value
        }
        Some(promise) => {
            let settled = || !matches!(promise.state(), PromiseState::Pending);
            let outcome = drive(&executor, context, &settled)?;
            match promise.state() {
                PromiseState::Fulfilled(value) => value,
                PromiseState::Rejected(reason) => {
                    return Err(StepError::retryable(describe(
                        JsError::from_opaque(reason),
                        context,
                    )));
                }
                PromiseState::Pending => {
                    debug_assert_eq!(outcome, Outcome::Stalled);
                    return Err(StepError::fatal(
                        "the handler's promise never settled: it waits for something that \
                         nothing will resolve",
                    ));
                }
            }
        }
    };

    // 4. The output: the value as JSON.stringify sees it.
    to_output(&value, context)
}

/// Creates the context with every global a script may use.
fn new_context(shared: &Rc<Shared>) -> Result<(Context, Rc<Executor>), StepError> {
    let setup = |e: JsError| StepError::retryable(format!("cannot set up JavaScript: {e}"));
    let executor = Rc::new(Executor::default());
    let mut context = Context::builder()
        .job_executor(executor.clone())
        .build()
        .map_err(setup)?;
    context.insert_data(SharedRef(shared.clone()));
    // atob/btoa, setTimeout & co, TextEncoder/TextDecoder, queueMicrotask, structuredClone,
    // URL, AbortController, and fetch with Request/Response/Headers over the host.
    boa_runtime::register(
        (FetchExtension(HostFetcher::new(shared.clone())),),
        None,
        &mut context,
    )
    .map_err(setup)?;
    globals::install(&mut context).map_err(setup)?;
    Ok((context, executor))
}

/// Runs queued jobs until `done()`; an exception escaping a job (a throwing timer callback)
/// fails the step like a throwing handler.
fn drive(
    executor: &Executor,
    context: &mut Context,
    done: &dyn Fn() -> bool,
) -> Result<Outcome, StepError> {
    executor
        .run_until(context, done)
        .map_err(|e| StepError::retryable(describe(e, context)))
}

/// `module.exports.onExecuteEventStream`, else `module.exports.handler`, if a function.
fn find_handler(context: &mut Context) -> JsResult<Option<JsObject>> {
    let module = context.global_object().get(js_string!("module"), context)?;
    let Some(module) = module.as_object() else {
        return Ok(None);
    };
    let Some(exports) = module.get(js_string!("exports"), context)?.as_object() else {
        return Ok(None);
    };
    for name in [js_string!("onExecuteEventStream"), js_string!("handler")] {
        if let Some(f) = exports.get(name, context)?.as_callable() {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// `event`: the CloudEvent as `message`, the granted secrets, the step's configuration and the
/// run context.
fn build_event(
    shared: &Shared,
    info: &RunInfo,
    configuration: Value,
    context: &mut Context,
) -> Result<JsValue, StepError> {
    let message: Value = serde_json::from_str(&shared.host.cloud_event()).map_err(|e| {
        StepError::fatal(format!("the trigger event from the host is not JSON: {e}"))
    })?;
    let secrets: serde_json::Map<String, Value> = shared
        .host
        .secret_names()
        .into_iter()
        .filter_map(|name| {
            let value = shared.host.secret(&name)?;
            Some((name, Value::String(value)))
        })
        .collect();
    let event = json!({
        "message": message,
        "secrets": secrets,
        "configuration": configuration,
        "run": {
            "id": info.run_id,
            "flowId": info.flow_id,
            "stepName": info.step_name,
            "attempt": info.attempt,
            "testRun": info.test_run,
        },
    });
    JsValue::from_json(&event, context)
        .map_err(|e| StepError::fatal(format!("cannot hand the event to JavaScript: {e}")))
}

/// `api`: `api.cache` (Auth0's cache over the host's per-flow cache).
fn build_api(context: &mut Context) -> JsValue {
    let cache = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(cache_get), js_string!("get"), 1)
        .function(NativeFunction::from_fn_ptr(cache_set), js_string!("set"), 3)
        .function(
            NativeFunction::from_fn_ptr(cache_delete),
            js_string!("delete"),
            1,
        )
        .build();
    ObjectInitializer::new(context)
        .property(js_string!("cache"), cache, Attribute::all())
        .build()
        .into()
}

/// The step output: `JSON.stringify(value)` parsed back, `undefined` as `null`.
fn to_output(value: &JsValue, context: &mut Context) -> Result<Value, StepError> {
    let not_json = |why: String| {
        StepError::fatal(format!(
            "the handler's result cannot be turned into JSON: {why}"
        ))
    };
    match globals::stringify(value, context) {
        Ok(None) => Ok(Value::Null),
        Ok(Some(text)) => serde_json::from_str(&text).map_err(|e| not_json(e.to_string())),
        Err(e) => Err(not_json(describe(e, context))),
    }
}

/// The message of a native error (a parse error is one), without the `SyntaxError:` prefix.
fn native_message(error: JsError, context: &mut Context) -> String {
    match error.try_native(context) {
        Ok(native) => native.message().to_string(),
        Err(_) => error.to_string(),
    }
}

/// `SyntaxError at line L, column C: what`, from Boa's "what at line L, col C".
///
/// A few lexer errors (an unterminated string, template or comment) come without a position;
/// for those the position is where the unterminated literal starts, found by
/// [`unterminated_literal`], or else the end of the code, where the lexer gave up.
pub fn syntax_error(message: &str, code: &str) -> String {
    if let Some(at) = message.rfind(" at line ") {
        let position = &message[at + " at line ".len()..];
        if let Some((line, column)) = position.split_once(", col ")
            && let (Ok(line), Ok(column)) =
                (line.trim().parse::<usize>(), column.trim().parse::<usize>())
        {
            let what = &message[..at];
            // Boa reports an unterminated comment where it gave up, the end of the code; its
            // start is more useful.
            let (line, column) = match unterminated_literal(code) {
                Some(start) if what.starts_with("unterminated") => start,
                _ => (line, column),
            };
            return format!("SyntaxError at line {line}, column {column}: {what}");
        }
    }
    let what = if message == "abrupt end" {
        "the code ends too early (an unclosed bracket, string or comment?)"
    } else {
        message
    };
    let (line, column) = unterminated_literal(code).unwrap_or_else(|| end_of(code));
    format!("SyntaxError at line {line}, column {column}: {what}")
}

/// Line and column (1-based, in characters) just past the last character of `code`.
fn end_of(code: &str) -> (usize, usize) {
    let line = code.split('\n').count();
    let column = code.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where the first string, template literal, block comment or regular expression that never
/// ends starts, as (line, column). A small scanner for error messages only: it tells a regular
/// expression from a division by the previous character, as editors do.
pub fn unterminated_literal(code: &str) -> Option<(usize, usize)> {
    let chars: Vec<char> = code.chars().collect();
    // Line and column of every character, so a literal's start can be reported.
    let mut positions = Vec::with_capacity(chars.len());
    let (mut line, mut column) = (1, 1);
    for &c in &chars {
        positions.push((line, column));
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    let at = |i: usize| positions[i];
    let newline = |c: char| matches!(c, '\n' | '\r');

    // Scans a template chunk from just after '`' or '}': Ok(index after '`'), or Err(index
    // after "${") when an expression starts, or None at the end of the code.
    let template = |mut i: usize| -> Option<Result<usize, usize>> {
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 2,
                '`' => return Some(Ok(i + 1)),
                '$' if chars.get(i + 1) == Some(&'{') => return Some(Err(i + 2)),
                _ => i += 1,
            }
        }
        None
    };

    let mut depth = 0usize;
    // (brace depth, start) of each template whose `${ ... }` is being scanned.
    let mut templates: Vec<(usize, usize)> = Vec::new();
    let mut previous: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && !newline(chars[i]) {
                    i += 1;
                }
                continue;
            }
            '/' if next == Some('*') => {
                let start = i;
                i += 2;
                loop {
                    if i + 1 >= chars.len() {
                        return Some(at(start));
                    }
                    if chars[i] == '*' && chars[i + 1] == '/' {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                let start = i;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Some(at(start)),
                        Some(&q) if q == c => break,
                        Some('\\') => i += 2,
                        Some(&ch) if newline(ch) => return Some(at(start)),
                        Some(_) => i += 1,
                    }
                }
            }
            '/' if previous.is_none_or(|p| "(,=:[!&|?{};+-*%<>~^".contains(p)) => {
                let start = i;
                let mut class = false;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Some(at(start)),
                        Some(&ch) if newline(ch) => return Some(at(start)),
                        Some('\\') => i += 1,
                        Some('[') => class = true,
                        Some(']') => class = false,
                        Some('/') if !class => break,
                        Some(_) => {}
                    }
                    i += 1;
                }
            }
            '`' => match template(i + 1) {
                None => return Some(at(i)),
                Some(Ok(end)) => {
                    i = end;
                    previous = Some('`');
                    continue;
                }
                Some(Err(expression)) => {
                    templates.push((depth, i));
                    depth += 1;
                    i = expression;
                    previous = Some('{');
                    continue;
                }
            },
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if let Some(&(open, start)) = templates.last()
                    && open == depth
                {
                    match template(i + 1) {
                        None => return Some(at(start)),
                        Some(Ok(end)) => {
                            templates.pop();
                            i = end;
                            previous = Some('`');
                            continue;
                        }
                        Some(Err(expression)) => {
                            depth += 1;
                            i = expression;
                            previous = Some('{');
                            continue;
                        }
                    }
                }
            }
            _ => {}
        }
        if !c.is_whitespace() {
            previous = Some(c);
        }
        i += 1;
    }
    None
}

// ------------------------------------------------------------------------- native functions

fn arg(args: &[JsValue], i: usize) -> JsValue {
    args.get(i).cloned().unwrap_or_default()
}

fn cache_error(code: &str, message: &str, context: &mut Context) -> JsResult<JsValue> {
    JsValue::from_json(
        &json!({ "type": "error", "code": code, "message": message }),
        context,
    )
}

fn host_cache_error(e: CacheError, context: &mut Context) -> JsResult<JsValue> {
    cache_error(&e.code, &e.message, context)
}

/// `api.cache.get(key)`: `{value, expires_at}`, or `undefined` for a miss. A store that cannot
/// be read counts as a miss (with a warning in the trace), because code falls back to
/// computing the value on a miss anyway.
fn cache_get(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let shared = shared(context)?;
    let Some(key) = arg(args, 0).as_string() else {
        return Ok(JsValue::undefined());
    };
    let key = key.to_std_string_lossy();
    match shared.host.cache_get(&key) {
        Ok(Some(entry)) => JsValue::from_json(
            &json!({ "value": entry.value, "expires_at": entry.expires_at }),
            context,
        ),
        Ok(None) => Ok(JsValue::undefined()),
        Err(e) => {
            shared.log(
                Level::Warn,
                &format!("api.cache.get failed ({e}); treated as a miss"),
            );
            Ok(JsValue::undefined())
        }
    }
}

/// A lifetime option: absent, or a finite number.
fn lifetime(options: &JsObject, name: &str, context: &mut Context) -> JsResult<Option<f64>> {
    let value = options.get(JsString::from(name), context)?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_number() {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(JsNativeError::typ()
            .with_message(format!("options.{name} must be a number of milliseconds"))
            .into()),
    }
}

/// `api.cache.set(key, value, {ttl?, expires_at?})`: `{type: "success", record}` or
/// `{type: "error", code, message}`, never a throw, as in Auth0.
fn cache_set(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let shared = shared(context)?;
    let Some(key) = arg(args, 0).as_string() else {
        return cache_error("INVALID_ARGUMENT", "the key must be a string", context);
    };
    let Some(value) = arg(args, 1).as_string() else {
        return cache_error("INVALID_ARGUMENT", "the value must be a string", context);
    };
    let (ttl, expires_at) = match arg(args, 2) {
        options if options.is_undefined() || options.is_null() => (None, None),
        options => {
            let Some(options) = options.as_object() else {
                return cache_error("INVALID_ARGUMENT", "options must be an object", context);
            };
            let ttl = lifetime(&options, "ttl", context);
            let expires_at = lifetime(&options, "expires_at", context);
            match (ttl, expires_at) {
                (Ok(Some(ttl)), _) if ttl < 0.0 => {
                    return cache_error(
                        "INVALID_ARGUMENT",
                        "options.ttl must not be negative",
                        context,
                    );
                }
                // Integral milliseconds; the float-to-int casts saturate, and the host caps
                // lifetimes anyway.
                (Ok(ttl), Ok(expires_at)) => (ttl.map(|t| t as u64), expires_at.map(|e| e as i64)),
                (Err(e), _) | (_, Err(e)) => {
                    let message = e
                        .as_native()
                        .map(|n| n.message().to_string())
                        .unwrap_or_else(|| e.to_string());
                    return cache_error("INVALID_ARGUMENT", &message, context);
                }
            }
        }
    };
    let key = key.to_std_string_lossy();
    let value = value.to_std_string_lossy();
    match shared.host.cache_set(&key, &value, ttl, expires_at) {
        Ok(entry) => JsValue::from_json(
            &json!({
                "type": "success",
                "record": { "value": entry.value, "expires_at": entry.expires_at },
            }),
            context,
        ),
        Err(e) => host_cache_error(e, context),
    }
}

/// `api.cache.delete(key)`: `{type: "success"}` or `{type: "error", code, message}`.
fn cache_delete(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let shared = shared(context)?;
    let Some(key) = arg(args, 0).as_string() else {
        return cache_error("INVALID_ARGUMENT", "the key must be a string", context);
    };
    match shared.host.cache_delete(&key.to_std_string_lossy()) {
        Ok(_) => JsValue::from_json(&json!({ "type": "success" }), context),
        Err(e) => host_cache_error(e, context),
    }
}
