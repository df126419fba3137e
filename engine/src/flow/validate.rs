//! Parsing and validation of flow definitions.
//!
//! Validation walks the raw JSON value instead of relying on serde errors,
//! because serde stops at the first problem while users editing a flow want
//! to see *every* problem at once, each with the path of the offending field
//! (`steps[1].branches[0].when[0][1].operator: unknown operator "TEXT_EQ"`).
//! Only a value that passes validation is deserialized into [`Flow`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

use super::model::{
    CREDENTIAL_FIELDS, CREDENTIAL_MASK, Flow, Operator, PluginRef, SEALED_CREDENTIAL, Span,
    secret_reference,
};
use super::template;

/// Maximum router nesting depth, to keep runs and traces bounded.
pub const MAX_ROUTER_DEPTH: usize = 16;
/// Maximum number of steps (nested included) in one flow.
pub const MAX_STEPS: usize = 1000;
/// Maximum length of a flow name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Maximum `timeoutMs` of an action (5 minutes).
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Maximum branches of one router: every branch is evaluated and traced on every run.
pub const MAX_BRANCHES: usize = 256;
/// Maximum conditions in one flow (all routers together), for the same reason.
pub const MAX_CONDITIONS: usize = 4000;
/// Maximum `retry.maxAttempts`.
pub const MAX_ATTEMPTS: u64 = 10;
/// Maximum `retry.initialBackoffMs` and `retry.maxBackoffMs` (5 minutes): a waiting retry
/// holds its worker slot, so an unbounded backoff would hold it for good.
pub const MAX_BACKOFF_MS: u64 = 300_000;

/// Shortest window a `threshold` step may count over.
pub const MIN_WINDOW_MS: u64 = 1_000;

/// Longest window or quiet period of a `threshold` step: 30 days. State is kept for three
/// windows per key, so this bounds how long the store holds it.
pub const MAX_WINDOW_MS: u64 = 30 * 86_400_000;

/// Highest `threshold` a step may set: a key keeps at most four times as many events.
pub const MAX_THRESHOLD: u32 = 1000;

/// One thing wrong with a flow definition, located by a JSON-ish path so an
/// editor can highlight the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "FlowProblem")]
pub struct Problem {
    /// Where the problem is (`steps[0].name`); empty for the whole document.
    pub path: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Problem {
    /// Convenience constructor, e.g. for callers adding plugin problems.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a definition; an error type so it can flow
/// through `?` and be shown to users as one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Adds a problem (used by callers running extra checks, e.g. plugins).
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl From<Vec<Problem>> for Problems {
    fn from(v: Vec<Problem>) -> Problems {
        Problems(v)
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Syntax of a flow document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2, as parsed by [`crate::yaml`]).
    Yaml,
    /// JSON when the first non-whitespace character is `{`, else YAML.
    #[default]
    Auto,
}

/// Parses a document into a raw JSON value without validating it; a syntax
/// error becomes a single problem with an empty path (the message carries
/// the line and column).
pub fn parse_document(text: &str, format: Format) -> Result<Value, Problems> {
    let format = match format {
        Format::Auto if text.trim_start().starts_with('{') => Format::Json,
        Format::Auto => Format::Yaml,
        f => f,
    };
    match format {
        Format::Json => serde_json::from_str::<Value>(text)
            .map_err(|e| Problems(vec![Problem::new("", format!("invalid JSON: {e}"))])),
        _ => crate::yaml::from_str::<Value>(text)
            .map_err(|e| Problems(vec![Problem::new("", format!("invalid YAML: {e}"))])),
    }
}

/// Parses (JSON or YAML), validates and builds a [`Flow`], reporting every
/// problem at once.
pub fn parse_flow(text: &str, format: Format) -> Result<Flow, Problems> {
    flow_from_value(parse_document(text, format)?)
}

/// Validates a raw value and, when it is valid, deserializes it.
pub fn flow_from_value(v: Value) -> Result<Flow, Problems> {
    let problems = validate_value(&v);
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    serde_json::from_value(v).map_err(|e| Problems(vec![Problem::new("", e.to_string())]))
}

/// Collects every problem of a raw flow definition (empty when valid).
/// Plugin existence is not checked here; see
/// [`Flow::action_steps_with_paths`].
pub fn validate_value(v: &Value) -> Vec<Problem> {
    let mut checker = Checker::default();
    checker.flow(v);
    checker.problems
}

/// Parses a cron expression the way schedule triggers use it: 5 fields are
/// standard cron (a `0` seconds field is prefixed), 6 or 7 fields include
/// seconds (and years).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {}", expr.trim()),
        6 | 7 => expr.trim().to_owned(),
        n => return Err(format!("must have 5, 6 or 7 fields, found {n}")),
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("invalid cron expression: {e}"))
}

/// `parent.key`, or `parent["key"]` when the key is not identifier-like.
fn key_path(parent: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-');
    match (parent.is_empty(), simple) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Value::String(key.to_owned())),
    }
}

/// `parent[i]`.
fn idx_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Describes a value's JSON type for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `^[A-Za-z0-9_-]{1,64}$`
fn valid_step_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// RFC 9110 token characters.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, space and tab: what every HTTP stack accepts.
fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Standard base64 (padded or not) that decodes to at least one byte.
fn is_base64(s: &str) -> bool {
    let trimmed = s.trim_end_matches('=');
    let pad = s.len() - trimmed.len();
    if trimmed.is_empty() || pad > 2 || (pad > 0 && !s.len().is_multiple_of(4)) {
        return false;
    }
    trimmed.len() % 4 != 1
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The validation walk; collects problems and remembers step names.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    /// Step name -> path of the step that first used it.
    names: HashMap<String, String>,
    step_count: usize,
    condition_count: usize,
}

impl Checker {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// Reports keys outside `allowed`.
    fn unknown_fields(&mut self, path: &str, obj: &Map<String, Value>, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.push(&key_path(path, key), "unknown field");
            }
        }
    }

    /// A required string field (missing and null are "required").
    fn required_str<'v>(
        &mut self,
        path: &str,
        obj: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v str> {
        let p = key_path(path, key);
        match obj.get(key) {
            None | Some(Value::Null) => {
                self.push(&p, "required");
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.push(&p, format!("must be a string, found {}", type_name(other)));
                None
            }
        }
    }

    /// A required, non-blank string field.
    fn required_non_empty(&mut self, path: &str, obj: &Map<String, Value>, key: &str) {
        if let Some(s) = self.required_str(path, obj, key)
            && s.trim().is_empty()
        {
            self.push(&key_path(path, key), "must not be empty");
        }
    }

    /// An optional field of a given kind; null counts as absent.
    fn optional(&mut self, path: &str, obj: &Map<String, Value>, key: &str, kind: Kind) {
        let Some(v) = obj.get(key) else { return };
        let ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Bool => v.is_boolean(),
            Kind::Object => v.is_object(),
        };
        if !ok && !v.is_null() {
            let want = match kind {
                Kind::Str => "a string",
                Kind::Bool => "a boolean",
                Kind::Object => "an object",
            };
            self.push(
                &key_path(path, key),
                format!("must be {want}, found {}", type_name(v)),
            );
        }
    }

    /// An optional integer in `min..=max`; returns it when valid.
    fn optional_int(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let v = obj.get(key)?;
        let p = key_path(path, key);
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.push(&p, format!("must be between {min} and {max}, found {n}"));
                None
            }
            None if v.as_i64().is_some() => {
                self.push(&p, format!("must be between {min} and {max}, found {v}"));
                None
            }
            None => {
                self.push(&p, format!("must be an integer, found {}", type_name(v)));
                None
            }
        }
    }

    fn flow(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else {
            self.push(
                "",
                format!("a flow must be an object, found {}", type_name(v)),
            );
            return;
        };
        self.unknown_fields(
            "",
            obj,
            &["name", "description", "trigger", "sampleData", "steps"],
        );
        if let Some(name) = self.required_str("", obj, "name") {
            if name.trim().is_empty() {
                self.push("name", "must not be empty");
            } else if name.chars().count() > MAX_NAME_CHARS {
                self.push(
                    "name",
                    format!(
                        "must be at most {MAX_NAME_CHARS} characters, found {}",
                        name.chars().count()
                    ),
                );
            }
        }
        self.optional("", obj, "description", Kind::Str);
        match obj.get("trigger") {
            None | Some(Value::Null) => self.push("trigger", "required"),
            Some(Value::Object(t)) => self.trigger(t),
            Some(other) => self.push(
                "trigger",
                format!("must be an object, found {}", type_name(other)),
            ),
        }
        self.optional("", obj, "sampleData", Kind::Object);
        match obj.get("steps") {
            None | Some(Value::Null) => self.push("steps", "required"),
            Some(Value::Array(steps)) => self.steps("steps", steps, 0),
            Some(other) => self.push(
                "steps",
                format!("must be a list, found {}", type_name(other)),
            ),
        }
        if self.step_count > MAX_STEPS {
            let n = self.step_count;
            self.push("steps", format!("too many steps: {n} (max {MAX_STEPS})"));
        }
        if self.condition_count > MAX_CONDITIONS {
            let n = self.condition_count;
            self.push(
                "steps",
                format!("too many conditions: {n} (max {MAX_CONDITIONS} in a flow)"),
            );
        }
    }

    fn trigger(&mut self, t: &Map<String, Value>) {
        let path = "trigger";
        match self.required_str(path, t, "type") {
            Some("webhook") => {
                self.unknown_fields(path, t, &["type", "auth", "syncResponse"]);
                match t.get("syncResponse") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if s == "summary" || s == "run" => {}
                    Some(other) => self.push(
                        "trigger.syncResponse",
                        format!("must be \"summary\" or \"run\", found {other}"),
                    ),
                }
                match t.get("auth") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(a)) => self.auth(a),
                    Some(other) => self.push(
                        "trigger.auth",
                        format!("must be an object, found {}", type_name(other)),
                    ),
                }
            }
            Some("schedule") => {
                self.unknown_fields(path, t, &["type", "cron"]);
                if let Some(expr) = self.required_str(path, t, "cron")
                    && let Err(e) = parse_cron(expr)
                {
                    self.push("trigger.cron", e);
                }
            }
            Some(other) => self.push(
                "trigger.type",
                format!("unknown trigger type {other:?} (expected \"webhook\" or \"schedule\")"),
            ),
            None => {}
        }
    }

    fn auth(&mut self, a: &Map<String, Value>) {
        let path = "trigger.auth";
        match self.required_str(path, a, "type") {
            Some("none") => self.unknown_fields(path, a, &["type"]),
            Some("header") => {
                self.unknown_fields(path, a, &["type", "header", "value"]);
                if let Some(h) = self.required_str(path, a, "header")
                    && !valid_header_name(h)
                {
                    self.push("trigger.auth.header", format!("invalid HTTP header name {h:?}"));
                }
                if let Some(v) = self.required_str(path, a, "value") {
                    if secret_reference(v).is_some() {
                        // Resolved from the project's secrets at intake.
                    } else if v.is_empty() {
                        self.push("trigger.auth.value", "must not be empty");
                    } else if !valid_header_value(v) {
                        self.push(
                            "trigger.auth.value",
                            "must contain only visible ASCII characters, spaces and tabs",
                        );
                    }
                }
            }
            Some("basic") => {
                self.unknown_fields(path, a, &["type", "username", "password"]);
                if let Some(u) = self.required_str(path, a, "username") {
                    if u.is_empty() {
                        self.push("trigger.auth.username", "must not be empty");
                    } else if u.contains(':') {
                        self.push("trigger.auth.username", "must not contain ':'");
                    }
                }
                self.required_str(path, a, "password");
            }
            Some("bearer") => {
                self.unknown_fields(path, a, &["type", "token"]);
                if let Some(t) = self.required_str(path, a, "token") {
                    if secret_reference(t).is_some() {
                        // Resolved from the project's secrets at intake.
                    } else if t.is_empty() {
                        self.push("trigger.auth.token", "must not be empty");
                    } else if !valid_header_value(t) {
                        self.push(
                            "trigger.auth.token",
                            "must contain only visible ASCII characters",
                        );
                    }
                }
            }
            Some("standardWebhooks") => {
                self.unknown_fields(path, a, &["type", "secret"]);
                // The mask and a sealed credential stand for the secret: a save has the mask
                // restored (or refused by `save_problems`) and a sealed one opened (or refused
                // by `FlowRegistry`) before the secret's form is checked. Refusing their form
                // here failed every reader of a masked or stored definition (`flow test`,
                // `flow deploy` of an export, plugin removal's check of stored flows).
                if let Some(s) = self.required_str(path, a, "secret")
                    && secret_reference(s).is_none()
                    && s != CREDENTIAL_MASK
                    && !s.starts_with(SEALED_CREDENTIAL)
                {
                    match s.strip_prefix("whsec_") {
                        None => self.push("trigger.auth.secret", "must start with \"whsec_\""),
                        Some(rest) if !is_base64(rest) => self.push(
                            "trigger.auth.secret",
                            "must be base64 after \"whsec_\"",
                        ),
                        Some(_) => {}
                    }
                }
            }
            Some(other) => self.push(
                "trigger.auth.type",
                format!(
                    "unknown auth type {other:?} (expected \"none\", \"header\", \"basic\", \"bearer\" or \"standardWebhooks\")"
                ),
            ),
            None => {}
        }
    }

    /// `depth` is the number of routers enclosing these steps.
    fn steps(&mut self, path: &str, steps: &[Value], depth: usize) {
        for (i, step) in steps.iter().enumerate() {
            self.step(&idx_path(path, i), step, depth);
        }
    }

    fn step(&mut self, path: &str, v: &Value, depth: usize) {
        self.step_count += 1;
        let Some(obj) = v.as_object() else {
            self.push(
                path,
                format!("a step must be an object, found {}", type_name(v)),
            );
            return;
        };
        if let Some(name) = self.required_str(path, obj, "name") {
            let name_path = key_path(path, "name");
            if !valid_step_name(name) {
                self.push(
                    &name_path,
                    format!("invalid step name {name:?} (use 1 to 64 letters, digits, '_' or '-')"),
                );
            } else if let Some(first) = self.names.get(name) {
                let msg = format!("duplicate step name {name:?} (first used at {first})");
                self.push(&name_path, msg);
            } else {
                self.names.insert(name.to_owned(), path.to_owned());
            }
        }
        match self.required_str(path, obj, "type") {
            Some("router") => self.router(path, obj, depth),
            Some("action") => self.action(path, obj),
            Some("threshold") => self.threshold(path, obj, depth),
            Some(other) => self.push(
                &key_path(path, "type"),
                format!(
                    "unknown step type {other:?} (expected \"router\", \"action\" or \"threshold\")"
                ),
            ),
            None => {}
        }
    }

    fn router(&mut self, path: &str, obj: &Map<String, Value>, depth: usize) {
        self.unknown_fields(path, obj, &["name", "type", "mode", "branches"]);
        if depth + 1 > MAX_ROUTER_DEPTH {
            self.push(
                path,
                format!("routers are nested too deeply (max {MAX_ROUTER_DEPTH} levels)"),
            );
            return;
        }
        match obj.get("mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(m)) if m == "firstMatch" || m == "allMatch" => {}
            Some(Value::String(m)) => self.push(
                &key_path(path, "mode"),
                format!("unknown mode {m:?} (expected \"firstMatch\" or \"allMatch\")"),
            ),
            Some(other) => self.push(
                &key_path(path, "mode"),
                format!("must be a string, found {}", type_name(other)),
            ),
        }
        let bpath = key_path(path, "branches");
        let branches = match obj.get("branches") {
            None | Some(Value::Null) => {
                self.push(&bpath, "required");
                return;
            }
            Some(Value::Array(b)) => b,
            Some(other) => {
                self.push(
                    &bpath,
                    format!("must be a list, found {}", type_name(other)),
                );
                return;
            }
        };
        if branches.is_empty() {
            self.push(&bpath, "must have at least one branch");
        }
        if branches.len() > MAX_BRANCHES {
            self.push(
                &bpath,
                format!(
                    "too many branches: {} (max {MAX_BRANCHES} per router)",
                    branches.len()
                ),
            );
        }
        let mut first_fallback: Option<String> = None;
        for (j, b) in branches.iter().enumerate() {
            let path = idx_path(&bpath, j);
            let Some(b) = b.as_object() else {
                self.push(
                    &path,
                    format!("a branch must be an object, found {}", type_name(b)),
                );
                continue;
            };
            self.unknown_fields(&path, b, &["name", "fallback", "when", "steps"]);
            self.required_non_empty(&path, b, "name");
            self.optional(&path, b, "fallback", Kind::Bool);
            let is_fallback = b.get("fallback") == Some(&Value::Bool(true));
            let when_path = key_path(&path, "when");
            if is_fallback {
                if let Some(first) = &first_fallback {
                    let msg = format!(
                        "only one fallback branch is allowed per router (first at {first})"
                    );
                    self.push(&key_path(&path, "fallback"), msg);
                } else {
                    first_fallback = Some(path.clone());
                }
                if b.get("when").is_some_and(|w| !w.is_null()) {
                    self.push(&when_path, "not allowed on a fallback branch");
                }
            } else {
                match b.get("when") {
                    None | Some(Value::Null) => self.push(&when_path, "required"),
                    Some(Value::Array(groups)) => self.groups(&when_path, groups),
                    Some(other) => self.push(
                        &when_path,
                        format!(
                            "must be a list of condition groups, found {}",
                            type_name(other)
                        ),
                    ),
                }
            }
            match b.get("steps") {
                None | Some(Value::Null) => {}
                Some(Value::Array(steps)) => {
                    self.steps(&key_path(&path, "steps"), steps, depth + 1)
                }
                Some(other) => self.push(
                    &key_path(&path, "steps"),
                    format!("must be a list, found {}", type_name(other)),
                ),
            }
        }
    }

    /// A `threshold` step: templates, the window and quiet period as durations, the threshold
    /// in range, and its `crossed` steps (one nesting level, like a router's branch).
    fn threshold(&mut self, path: &str, obj: &Map<String, Value>, depth: usize) {
        self.unknown_fields(
            path,
            obj,
            &[
                "name",
                "type",
                "groupBy",
                "window",
                "threshold",
                "countDistinct",
                "suppressFor",
                "eventTime",
                "eventId",
                "crossed",
            ],
        );
        if depth + 1 > MAX_ROUTER_DEPTH {
            self.push(
                path,
                format!("steps are nested too deeply (max {MAX_ROUTER_DEPTH} levels)"),
            );
            return;
        }
        if let Some(group_by) = self.required_str(path, obj, "groupBy") {
            self.templates(
                &key_path(path, "groupBy"),
                &Value::String(group_by.to_owned()),
            );
        }
        for key in ["countDistinct", "eventTime", "eventId"] {
            self.optional(path, obj, key, Kind::Str);
            if let Some(text @ Value::String(_)) = obj.get(key) {
                self.templates(&key_path(path, key), text);
            }
        }
        if let Some(window) = self.required_str(path, obj, "window") {
            self.span(&key_path(path, "window"), window, MIN_WINDOW_MS);
        }
        self.optional(path, obj, "suppressFor", Kind::Str);
        if let Some(Value::String(quiet)) = obj.get("suppressFor") {
            self.span(&key_path(path, "suppressFor"), quiet, 0);
        }
        match obj.get("threshold") {
            None | Some(Value::Null) => self.push(&key_path(path, "threshold"), "required"),
            Some(_) => {
                self.optional_int(path, obj, "threshold", 1, u64::from(MAX_THRESHOLD));
            }
        }
        let cpath = key_path(path, "crossed");
        match obj.get("crossed") {
            None | Some(Value::Null) => {}
            Some(Value::Array(steps)) => self.steps(&cpath, steps, depth + 1),
            Some(other) => self.push(
                &cpath,
                format!("must be a list, found {}", type_name(other)),
            ),
        }
    }

    /// A duration between `min_ms` and [`MAX_WINDOW_MS`].
    fn span(&mut self, path: &str, text: &str, min_ms: u64) {
        match Span::parse(text) {
            Ok(span) if span.millis() < min_ms => self.push(
                path,
                format!("must be at least {}", Span::from_millis(min_ms)),
            ),
            Ok(span) if span.millis() > MAX_WINDOW_MS => self.push(
                path,
                format!("must be at most {}", Span::from_millis(MAX_WINDOW_MS)),
            ),
            Ok(_) => {}
            Err(e) => self.push(path, e),
        }
    }

    fn groups(&mut self, path: &str, groups: &[Value]) {
        if groups.is_empty() {
            self.push(path, "must have at least one condition group");
        }
        for (g, group) in groups.iter().enumerate() {
            let gpath = idx_path(path, g);
            match group {
                Value::Array(conds) if conds.is_empty() => {
                    self.push(&gpath, "must have at least one condition")
                }
                Value::Array(conds) => {
                    self.condition_count += conds.len();
                    for (c, cond) in conds.iter().enumerate() {
                        self.condition(&idx_path(&gpath, c), cond);
                    }
                }
                other => self.push(
                    &gpath,
                    format!(
                        "must be a list of conditions (AND-group), found {}",
                        type_name(other)
                    ),
                ),
            }
        }
    }

    fn condition(&mut self, path: &str, v: &Value) {
        let Some(c) = v.as_object() else {
            self.push(
                path,
                format!("a condition must be an object, found {}", type_name(v)),
            );
            return;
        };
        self.unknown_fields(
            path,
            c,
            &["left", "operator", "right", "caseSensitive", "timeZone"],
        );
        match c.get("left") {
            None => self.push(&key_path(path, "left"), "required"),
            Some(left) => self.templates(&key_path(path, "left"), left),
        }
        let op = match self.required_str(path, c, "operator") {
            Some(s) => match s.parse::<Operator>() {
                Ok(op) => Some(op),
                Err(e) => {
                    self.push(&key_path(path, "operator"), e);
                    None
                }
            },
            None => None,
        };
        let right = c.get("right").filter(|r| !r.is_null());
        let rpath = key_path(path, "right");
        if let Some(r) = right {
            self.templates(&rpath, r);
        }
        if let Some(op) = op {
            match (op.is_unary(), right) {
                (true, Some(_)) => {
                    self.push(&rpath, format!("not allowed for unary operator {op}"))
                }
                (false, None) => self.push(&rpath, format!("required for operator {op}")),
                _ => {}
            }
        }
        self.optional(path, c, "caseSensitive", Kind::Bool);
        self.optional(path, c, "timeZone", Kind::Str);
        let zpath = key_path(path, "timeZone");
        if let Some(Value::String(zone)) = c.get("timeZone") {
            if !op.is_some_and(Operator::is_calendar) {
                self.push(
                    &zpath,
                    "only allowed with the TIME_OF_DAY_* and DAY_OF_WEEK_* operators",
                );
            } else if let Err(e) = super::calendar::parse_zone(zone) {
                self.push(&zpath, e);
            }
        }
        // A literal right operand of a calendar operator is checked now, not at run time.
        if let (Some(op), Some(r)) = (op, right)
            && op.is_calendar()
            && !r.as_str().is_some_and(|s| s.contains("{{"))
        {
            let checked = match op {
                Operator::TimeOfDayIsBetween | Operator::TimeOfDayIsNotBetween => r
                    .as_str()
                    .ok_or_else(|| "must be a time range such as 08:00-18:00".to_owned())
                    .and_then(|t| super::calendar::parse_time_range(t).map(|_| ())),
                _ => super::calendar::parse_days(r).map(|_| ()),
            };
            if let Err(e) = checked {
                self.push(&rpath, e);
            }
        }
    }

    fn action(&mut self, path: &str, obj: &Map<String, Value>) {
        self.unknown_fields(
            path,
            obj,
            &[
                "name",
                "type",
                "plugin",
                "input",
                "retry",
                "continueOnFailure",
                "timeoutMs",
                "allowedHosts",
                "allowedRecipients",
                "secrets",
            ],
        );
        self.string_list(path, obj, "allowedRecipients", |r| {
            super::recipients::RecipientPattern::parse(r).map(|_| ())
        });
        self.string_list(path, obj, "allowedHosts", |h| {
            crate::flow::hosts::HostPattern::parse(h).map(|_| ())
        });
        self.string_list(path, obj, "secrets", check_secret_name);
        if let Some(p) = self.required_str(path, obj, "plugin")
            && let Err(e) = PluginRef::parse(p)
        {
            self.push(&key_path(path, "plugin"), e);
        }
        let ipath = key_path(path, "input");
        match obj.get("input") {
            None | Some(Value::Null) => {}
            Some(input @ Value::Object(_)) => self.templates(&ipath, input),
            Some(other) => self.push(
                &ipath,
                format!("must be an object, found {}", type_name(other)),
            ),
        }
        let rpath = key_path(path, "retry");
        match obj.get("retry") {
            None | Some(Value::Null) => {}
            Some(Value::Object(r)) => {
                self.unknown_fields(
                    &rpath,
                    r,
                    &["maxAttempts", "initialBackoffMs", "maxBackoffMs"],
                );
                self.optional_int(&rpath, r, "maxAttempts", 1, MAX_ATTEMPTS);
                let initial = self.optional_int(&rpath, r, "initialBackoffMs", 0, MAX_BACKOFF_MS);
                let max = self.optional_int(&rpath, r, "maxBackoffMs", 0, MAX_BACKOFF_MS);
                if let (Some(initial), Some(max)) = (initial, max)
                    && max < initial
                {
                    self.push(
                        &key_path(&rpath, "maxBackoffMs"),
                        format!("must be at least initialBackoffMs ({initial})"),
                    );
                }
            }
            Some(other) => self.push(
                &rpath,
                format!("must be an object, found {}", type_name(other)),
            ),
        }
        self.optional(path, obj, "continueOnFailure", Kind::Bool);
        if obj.get("timeoutMs").is_some_and(|t| !t.is_null()) {
            self.optional_int(path, obj, "timeoutMs", 1, MAX_TIMEOUT_MS);
        }
    }

    /// An optional list of strings, each checked by `check`.
    fn string_list(
        &mut self,
        path: &str,
        obj: &Map<String, Value>,
        key: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) {
        let lpath = key_path(path, key);
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{lpath}[{i}]");
                    match item.as_str() {
                        Some(text) => {
                            if let Err(e) = check(text) {
                                self.push(&ipath, e);
                            }
                        }
                        None => self.push(
                            &ipath,
                            format!("must be a string, found {}", type_name(item)),
                        ),
                    }
                }
            }
            Some(other) => self.push(
                &lpath,
                format!("must be a list, found {}", type_name(other)),
            ),
        }
    }

    /// Checks template syntax in every string inside `v`.
    fn templates(&mut self, path: &str, v: &Value) {
        match v {
            Value::String(s) => {
                if let Err(e) = template::check(s) {
                    self.push(path, format!("invalid template: {e}"));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.templates(&idx_path(path, i), item);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    self.templates(&key_path(path, k), item);
                }
            }
            _ => {}
        }
    }
}

/// Expected kind of an optional field.
/// Problems a definition must not have to be saved now, on top of [`validate_value`]. They are
/// kept apart because stored flows are re-validated on load with [`validate_value`]: a flow
/// saved before these rules existed keeps loading (and its webhook keeps working) until it is
/// saved again.
///
/// - a webhook credential that is a template but not exactly `{{secrets.NAME}}` (before, it
///   was silently taken as the literal token);
/// - a webhook credential that is the API's mask `********` with nothing stored to stand for;
/// - a step input template naming a secret the step is not granted (`secrets: [...]`): it
///   would only ever render empty.
pub fn save_problems(v: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(auth) = v.pointer("/trigger/auth").and_then(Value::as_object)
        && let Some(kind) = auth.get("type").and_then(Value::as_str)
        && let Some((_, field)) = CREDENTIAL_FIELDS.iter().find(|(k, _)| *k == kind)
        && let Some(value) = auth.get(*field).and_then(Value::as_str)
    {
        let path = format!("trigger.auth.{field}");
        if value == CREDENTIAL_MASK {
            problems.push(Problem::new(
                path,
                format!(
                    "is the mask {CREDENTIAL_MASK:?} the API shows in place of a credential, and no \
                     stored {kind} credential is there for it to keep: send the credential, or \
                     {{{{secrets.NAME}}}} to read it from a project secret"
                ),
            ));
        } else if (value.contains("{{") || value.contains("}}"))
            && secret_reference(value).is_none()
        {
            problems.push(Problem::new(
                path,
                "a template here must be exactly {{secrets.NAME}} (a project secret, set with \
                 PUT /v1/secrets/NAME); no other template is resolved in a credential",
            ));
        }
    }
    if let Some(Value::Array(steps)) = v.get("steps") {
        secret_grants(&mut problems, "steps", steps);
    }
    problems
}

/// Every action step's input templates that name a secret outside its `secrets` list.
fn secret_grants(problems: &mut Vec<Problem>, path: &str, steps: &[Value]) {
    for (i, step) in steps.iter().enumerate() {
        let spath = idx_path(path, i);
        let Some(obj) = step.as_object() else {
            continue;
        };
        if obj.get("type").and_then(Value::as_str) == Some("action")
            && let Some(input) = obj.get("input")
        {
            let granted: Vec<&str> = obj
                .get("secrets")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut named = Vec::new();
            referenced_secrets_at(&key_path(&spath, "input"), input, &mut named);
            for (at, name) in named {
                if !granted.contains(&name.as_str()) {
                    problems.push(Problem::new(
                        at,
                        format!(
                            "names secret {name}, which this step is not granted: add {name:?} \
                             to {}",
                            key_path(&spath, "secrets")
                        ),
                    ));
                }
            }
        }
        if obj.get("type").and_then(Value::as_str) != Some("action") {
            // Only an action step can be granted a secret: a router condition or a threshold
            // field naming one would only ever see it empty.
            let mut named = Vec::new();
            for (key, value) in obj {
                match key.as_str() {
                    "crossed" | "steps" => {}
                    "branches" => {
                        for (j, branch) in value.as_array().into_iter().flatten().enumerate() {
                            if let Some(when) = branch.get("when") {
                                let bpath = idx_path(&key_path(&spath, "branches"), j);
                                referenced_secrets_at(&key_path(&bpath, "when"), when, &mut named);
                            }
                        }
                    }
                    _ => referenced_secrets_at(&key_path(&spath, key), value, &mut named),
                }
            }
            for (at, name) in named {
                problems.push(Problem::new(
                    at,
                    format!(
                        "names secret {name}, but only action steps can read secrets (those \
                         granted them in `secrets`)"
                    ),
                ));
            }
        }
        if let Some(Value::Array(branches)) = obj.get("branches") {
            for (j, branch) in branches.iter().enumerate() {
                if let Some(Value::Array(inner)) = branch.get("steps") {
                    let bpath = key_path(&idx_path(&key_path(&spath, "branches"), j), "steps");
                    secret_grants(problems, &bpath, inner);
                }
            }
        }
        if let Some(Value::Array(inner)) = obj.get("crossed") {
            secret_grants(problems, &key_path(&spath, "crossed"), inner);
        }
    }
}

/// The secret names `{{secrets.NAME}}` templates in `v` refer to (`secrets.NAME…`,
/// `secrets['NAME']`), each once, in order of appearance.
pub fn referenced_secrets(v: &Value) -> Vec<String> {
    let mut found = Vec::new();
    referenced_secrets_at("", v, &mut found);
    let mut names: Vec<String> = Vec::new();
    for (_, name) in found {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// `(path of the string, secret name)` for every secret a template in `v` names.
fn referenced_secrets_at(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(open) = rest.find("{{") {
                let after = &rest[open + 2..];
                let Some(close) = after.find("}}") else {
                    break;
                };
                if let Ok(segments) = template::parse_path(&after[..close])
                    && let [template::PathSegment::Key(root), name, ..] = segments.as_slice()
                    && root == "secrets"
                {
                    let name = match name {
                        template::PathSegment::Key(k) => k.clone(),
                        template::PathSegment::Index(i) => i.to_string(),
                    };
                    out.push((path.to_string(), name));
                }
                rest = &after[close + 2..];
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                referenced_secrets_at(&idx_path(path, i), item, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                referenced_secrets_at(&key_path(path, k), item, out);
            }
        }
        _ => {}
    }
}

/// Secret names: what `PUT /v1/secrets/{name}` accepts.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid secret name {name:?}: use 1-128 letters, digits, '_', '-' or '.'"
        ))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Object,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::{RouterMode, Step, SyncAnswer, Trigger, WebhookAuth};
    use serde_json::json;

    const YAML: &str = r#"
name: Failed runs to Slack
description: optional text
trigger:
  type: webhook
  auth:
    type: header
    header: X-Gitlab-Event-Streaming-Token
    value: s3cret
sampleData:
  flow.run.finished: {action: flow.run.finished}
steps:
  - name: route
    type: router
    mode: firstMatch
    branches:
      - name: Failed run
        when:
          - - left: "{{trigger.body.action}}"
              operator: TEXT_EXACTLY_MATCHES
              right: flow.run.finished
              caseSensitive: false
            - left: "{{trigger.body.data.flowRun.status}}"
              operator: EXISTS
        steps:
          - name: notify
            type: action
            plugin: log@0.1.0
            input: {message: "Run {{trigger.body.data.flowRun.id}} failed"}
            retry: {maxAttempts: 3, initialBackoffMs: 200, maxBackoffMs: 10000}
            continueOnFailure: false
            timeoutMs: 10000
      - name: Otherwise
        fallback: true
        steps: []
"#;

    fn messages(r: Result<Flow, Problems>) -> Vec<String> {
        r.unwrap_err().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn parses_the_documented_example() {
        let flow = parse_flow(YAML, Format::Auto).unwrap();
        assert_eq!(flow.name, "Failed runs to Slack");
        assert_eq!(
            flow.trigger,
            Trigger::Webhook {
                auth: WebhookAuth::Header {
                    header: "X-Gitlab-Event-Streaming-Token".into(),
                    value: "s3cret".into()
                },
                sync_response: SyncAnswer::Summary,
            }
        );
        let Step::Router(r) = &flow.steps[0] else {
            panic!()
        };
        assert_eq!(r.mode, RouterMode::FirstMatch);
        assert_eq!(r.branches[0].when[0].len(), 2);
        assert!(r.branches[1].fallback);
        let notify = flow.find_step("notify").unwrap().as_action().unwrap();
        assert_eq!(notify.retry.max_attempts, 3);
        assert_eq!(notify.timeout_ms, Some(10_000));
        assert_eq!(
            flow.sample_data.as_ref().unwrap()["flow.run.finished"],
            json!({"action": "flow.run.finished"})
        );
        // Round trip through JSON text, with both explicit and auto format.
        let text = serde_json::to_string_pretty(&flow.to_value()).unwrap();
        assert_eq!(parse_flow(&text, Format::Json).unwrap(), flow);
        assert_eq!(parse_flow(&text, Format::Auto).unwrap(), flow);
        assert_eq!(flow_from_value(flow.to_value()).unwrap(), flow);
        let yaml = crate::yaml::to_string(&flow).unwrap();
        assert_eq!(parse_flow(&yaml, Format::Yaml).unwrap(), flow);
    }

    #[test]
    fn nulls_mean_defaults() {
        let flow = parse_flow(
            "name: n\ntrigger: {type: webhook, auth: null}\nsteps:\n  - name: a\n    type: action\n    plugin: log@1.0.0\n    input:\n    retry:\n    timeoutMs:\n",
            Format::Yaml,
        )
        .unwrap();
        let a = flow.steps[0].as_action().unwrap();
        assert!(a.input.is_empty());
        assert_eq!(a.timeout_ms, None);
    }

    /// Regression (hardening I): `initialBackoffMs: 1e12` was accepted, and two such retries
    /// held every worker slot.
    /// Regression (hardening I): 12,000 branches were accepted and every run traced them all.
    #[test]
    fn branches_and_conditions_are_capped_at_save_time() {
        let cond = json!({"left": "{{trigger.body.a}}", "operator": "EXISTS"});
        let branches: Vec<Value> = (0..300)
            .map(|i| json!({"name": format!("b{i}"), "when": [[cond, cond, cond, cond, cond, cond, cond, cond, cond, cond, cond, cond, cond, cond]]}))
            .collect();
        let v = json!({"name": "f", "trigger": {"type": "webhook"}, "steps": [
            {"name": "r", "type": "router", "branches": branches}]});
        let got: Vec<String> = validate_value(&v).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "steps[0].branches: too many branches: 300 (max 256 per router)",
                "steps: too many conditions: 4200 (max 4000 in a flow)",
            ]
        );
    }

    #[test]
    fn retry_backoff_is_capped_at_save_time() {
        let v = json!({"name": "f", "trigger": {"type": "webhook"}, "steps": [
            {"name": "a", "type": "action", "plugin": "log@0.1.0",
             "retry": {"initialBackoffMs": 1_000_000_000_000_u64, "maxBackoffMs": 400_000}}]});
        let got: Vec<String> = validate_value(&v).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "steps[0].retry.initialBackoffMs: must be between 0 and 300000, found 1000000000000",
                "steps[0].retry.maxBackoffMs: must be between 0 and 300000, found 400000",
            ]
        );
        let stored = crate::flow::RetryPolicy {
            max_attempts: 3,
            initial_backoff_ms: 1_000_000_000_000,
            max_backoff_ms: u64::MAX,
        };
        assert_eq!(stored.backoff(1).as_millis(), u128::from(MAX_BACKOFF_MS));
    }

    #[test]
    fn reports_every_problem_with_paths() {
        let v = json!({
            "name": "",
            "trigger": {"type": "webhook", "auth": {"type": "standardWebhooks", "secret": "abc"}},
            "colour": "red",
            "steps": [
                {"name": "notify", "type": "action", "plugin": "log@0.1.0"},
                {"name": "route", "type": "router", "mode": "sometimes", "branches": [
                    {"name": "a", "when": [[
                        {"left": "{{x}}", "operator": "EXISTS"},
                        {"left": "{{x}}", "operator": "TEXT_EQ", "right": 1}
                    ]], "steps": [
                        {"name": "notify", "type": "action", "plugin": "Log@1"}
                    ]},
                    {"name": "b", "fallback": true, "when": [[{"left": 1, "operator": "EXISTS"}]]},
                    {"name": "c", "fallback": true}
                ]},
                {"name": "x y", "type": "action", "plugin": "log@0.1.0", "retyr": {},
                 "input": {"m": "{{ unclosed", "list": ["ok", "{{a..b}}"]},
                 "retry": {"maxAttempts": 11, "initialBackoffMs": 500, "maxBackoffMs": 100},
                 "timeoutMs": 0},
                {"name": "cond", "type": "router", "branches": [
                    {"name": "", "when": [[
                        {"left": "a", "operator": "EXISTS", "right": "b"},
                        {"left": "a", "operator": "TEXT_CONTAINS"},
                        {"operator": "NUMBER_IS_EQUAL_TO", "right": "{{ }}", "caseSensitive": "yes"}
                    ], []]},
                    {"name": "w", "when": []}
                ]},
                {"name": "t", "type": "loop"},
                "not a step"
            ]
        });
        let got: Vec<String> = validate_value(&v).iter().map(|p| p.to_string()).collect();
        let expected = [
            "colour: unknown field",
            "name: must not be empty",
            "trigger.auth.secret: must start with \"whsec_\"",
            "steps[1].mode: unknown mode \"sometimes\" (expected \"firstMatch\" or \"allMatch\")",
            "steps[1].branches[0].when[0][1].operator: unknown operator \"TEXT_EQ\"",
            "steps[1].branches[0].steps[0].name: duplicate step name \"notify\" (first used at steps[0])",
            "steps[1].branches[0].steps[0].plugin: invalid plugin name \"Log\" (expected lowercase letters, digits and '-', not starting with '-')",
            "steps[1].branches[1].when: not allowed on a fallback branch",
            "steps[1].branches[2].fallback: only one fallback branch is allowed per router (first at steps[1].branches[1])",
            "steps[2].name: invalid step name \"x y\" (use 1 to 64 letters, digits, '_' or '-')",
            "steps[2].retyr: unknown field",
            "steps[2].input.m: invalid template: unclosed \"{{\" at byte 0",
            "steps[2].input.list[1]: invalid template: bad path in \"{{a..b}}\": expected a key, found '.'",
            "steps[2].retry.maxAttempts: must be between 1 and 10, found 11",
            "steps[2].retry.maxBackoffMs: must be at least initialBackoffMs (500)",
            "steps[2].timeoutMs: must be between 1 and 300000, found 0",
            "steps[3].branches[0].name: must not be empty",
            "steps[3].branches[0].when[0][0].right: not allowed for unary operator EXISTS",
            "steps[3].branches[0].when[0][1].right: required for operator TEXT_CONTAINS",
            "steps[3].branches[0].when[0][2].left: required",
            "steps[3].branches[0].when[0][2].right: invalid template: bad path in \"{{ }}\": empty expression",
            "steps[3].branches[0].when[0][2].caseSensitive: must be a boolean, found a string",
            "steps[3].branches[0].when[1]: must have at least one condition",
            "steps[3].branches[1].when: must have at least one condition group",
            "steps[4].type: unknown step type \"loop\" (expected \"router\", \"action\" or \"threshold\")",
            "steps[5]: a step must be an object, found a string",
        ];
        for (g, e) in got.iter().zip(expected.iter()) {
            assert_eq!(g, e);
        }
        assert_eq!(got.len(), expected.len(), "{got:#?}");
    }

    #[test]
    fn threshold_steps_and_calendar_conditions_are_checked_by_path() {
        let problems = messages(flow_from_value(json!({
            "name": "f", "trigger": {"type": "webhook"},
            "steps": [
                {"name": "count", "type": "threshold", "groupBy": "{{trigger.body.ip", "window": "1w",
                 "threshold": 0, "suppressFor": "forever", "countDistinct": 5, "extra": 1,
                 "crossed": [{"name": "alert", "type": "action", "plugin": "Log"}]},
                {"name": "short", "type": "threshold", "window": "500ms", "threshold": 1001},
                {"name": "route", "type": "router", "branches": [{"name": "b", "when": [[
                    {"left": "{{trigger.body.created}}", "operator": "TIME_OF_DAY_IS_BETWEEN", "right": "8-18", "timeZone": "Europe/Nowhere"},
                    {"left": "x", "operator": "DAY_OF_WEEK_IS", "right": "Funday"},
                    {"left": "x", "operator": "TEXT_CONTAINS", "right": "y", "timeZone": "UTC"},
                    {"left": "x", "operator": "DAY_OF_WEEK_IS_NOT", "right": "{{trigger.body.days}}", "timeZone": "Asia/Tokyo"}
                ]]}]}
            ]
        })));
        let expected = [
            "steps[0].extra: unknown field",
            "steps[0].groupBy: invalid template",
            "steps[0].countDistinct: must be a string, found a number",
            "steps[0].window: invalid duration \"1w\"",
            "steps[0].suppressFor: invalid duration \"forever\"",
            "steps[0].threshold: must be between 1 and 1000, found 0",
            "steps[0].crossed[0].plugin:",
            "steps[1].groupBy: required",
            "steps[1].window: must be at least 1s",
            "steps[1].threshold: must be between 1 and 1000, found 1001",
            "steps[2].branches[0].when[0][0].timeZone: unknown time zone \"Europe/Nowhere\"",
            "steps[2].branches[0].when[0][0].right: invalid time range \"8-18\"",
            "steps[2].branches[0].when[0][1].right: unknown day \"Funday\"",
            "steps[2].branches[0].when[0][2].timeZone: only allowed with the TIME_OF_DAY_* and DAY_OF_WEEK_* operators",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn required_fields() {
        let got = messages(flow_from_value(json!({})));
        assert_eq!(
            got,
            ["name: required", "trigger: required", "steps: required"]
        );
        let got = messages(flow_from_value(json!([])));
        assert_eq!(got, ["a flow must be an object, found a list"]);
        let got = messages(flow_from_value(json!({
            "name": 5, "trigger": {}, "steps": {}
        })));
        assert_eq!(
            got,
            [
                "name: must be a string, found a number",
                "trigger.type: required",
                "steps: must be a list, found an object"
            ]
        );
        let got = messages(flow_from_value(json!({
            "name": "n", "trigger": {"type": "webhook"},
            "steps": [{"type": "router", "name": "r"}, {"type": "action", "name": "a"}, {"name": "b"}]
        })));
        assert_eq!(
            got,
            [
                "steps[0].branches: required",
                "steps[1].plugin: required",
                "steps[2].type: required"
            ]
        );
        let long = "x".repeat(201);
        let got = messages(flow_from_value(
            json!({"name": long, "trigger": {"type": "webhook"}, "steps": []}),
        ));
        assert_eq!(got, ["name: must be at most 200 characters, found 201"]);
    }

    #[test]
    fn triggers_and_auth() {
        let check = |trigger: Value| -> Vec<String> {
            validate_value(&json!({"name": "n", "trigger": trigger, "steps": []}))
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert!(check(json!({"type": "schedule", "cron": "*/5 * * * *"})).is_empty());
        assert!(check(json!({"type": "schedule", "cron": "0 */5 * * * *"})).is_empty());
        assert!(check(json!({"type": "schedule", "cron": "0 0 12 * * Mon-Fri 2030"})).is_empty());
        assert_eq!(
            check(json!({"type": "schedule", "cron": "* * *"})),
            ["trigger.cron: must have 5, 6 or 7 fields, found 3"]
        );
        let bad = check(json!({"type": "schedule", "cron": "99 * * * *"}));
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with("trigger.cron: invalid cron expression"),
            "{bad:?}"
        );
        assert_eq!(
            check(json!({"type": "schedule", "auth": {"type": "none"}})),
            ["trigger.auth: unknown field", "trigger.cron: required"]
        );
        assert_eq!(
            check(json!({"type": "cron"})),
            ["trigger.type: unknown trigger type \"cron\" (expected \"webhook\" or \"schedule\")"]
        );
        let auth = |a: Value| check(json!({"type": "webhook", "auth": a}));
        assert!(auth(json!({"type": "none"})).is_empty());
        assert!(auth(json!({"type": "basic", "username": "u", "password": ""})).is_empty());
        assert!(auth(json!({"type": "bearer", "token": "t"})).is_empty());
        assert!(auth(json!({"type": "standardWebhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})).is_empty());
        assert!(auth(json!({"type": "standardWebhooks", "secret": "whsec_c2VjcmV0"})).is_empty());
        assert!(auth(json!({"type": "standardWebhooks", "secret": "whsec_c2VjcmU="})).is_empty());
        // The mask and a sealed secret stand for one: refused or opened elsewhere, not as
        // malformed secrets (a save of an export would otherwise get a misleading problem).
        assert!(auth(json!({"type": "standardWebhooks", "secret": CREDENTIAL_MASK})).is_empty());
        let sealed = format!("{SEALED_CREDENTIAL}bm9uY2U=:c2VhbGVk");
        assert!(auth(json!({"type": "standardWebhooks", "secret": sealed})).is_empty());
        assert_eq!(
            auth(json!({"type": "standardWebhooks", "secret": "whsec_not base64!"})),
            ["trigger.auth.secret: must be base64 after \"whsec_\""]
        );
        assert_eq!(
            auth(json!({"type": "standardWebhooks", "secret": "whsec_"})),
            ["trigger.auth.secret: must be base64 after \"whsec_\""]
        );
        assert_eq!(
            auth(json!({"type": "header", "header": "Bad Header", "value": "", "token": "x"})),
            [
                "trigger.auth.token: unknown field",
                "trigger.auth.header: invalid HTTP header name \"Bad Header\"",
                "trigger.auth.value: must not be empty"
            ]
        );
        assert_eq!(
            auth(json!({"type": "basic", "username": "a:b"})),
            [
                "trigger.auth.username: must not contain ':'",
                "trigger.auth.password: required"
            ]
        );
        assert_eq!(
            auth(json!({"type": "oauth"})),
            [
                "trigger.auth.type: unknown auth type \"oauth\" (expected \"none\", \"header\", \"basic\", \"bearer\" or \"standardWebhooks\")"
            ]
        );
        assert_eq!(
            auth(json!("none")),
            ["trigger.auth: must be an object, found a string"]
        );
    }

    #[test]
    fn syntax_errors_are_single_problems() {
        let e = parse_flow("{\"name\": ", Format::Auto).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e.0[0].path, "");
        assert!(e.0[0].message.starts_with("invalid JSON:"), "{e}");
        assert!(e.0[0].message.contains("line 1"), "{e}");
        let e = parse_flow("name: [unclosed\nsteps: 1", Format::Yaml).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e.0[0].message.starts_with("invalid YAML:"), "{e}");
        assert!(e.0[0].message.contains("line"), "{e}");
        let e = parse_flow("", Format::Auto).unwrap_err();
        assert_eq!(e.to_string(), "a flow must be an object, found null");
    }

    #[test]
    fn yaml_keys_and_sample_data_verbatim() {
        let flow = parse_flow(
            "name: n\ntrigger: {type: webhook}\nsampleData:\n  200: {a: 1.5, b: [true, null]}\n  true: x\nsteps: []\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(
            Value::Object(flow.sample_data.unwrap()),
            json!({"200": {"a": 1.5, "b": [true, null]}, "true": "x"})
        );
        let e = parse_flow("name: n\nx: .nan\n", Format::Yaml).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid YAML: non-finite float"),
            "{e}"
        );
        assert!(e.to_string().ends_with("at line 2, column 4"), "{e}");
    }

    #[test]
    fn depth_and_count_limits() {
        // 17 nested routers: the 17th is reported.
        let mut step = json!({"name": "leaf", "type": "action", "plugin": "log@1.0.0"});
        for d in (0..17).rev() {
            step = json!({"name": format!("r{d}"), "type": "router", "branches": [
                {"name": "b", "fallback": true, "steps": [step]}
            ]});
        }
        let problems =
            validate_value(&json!({"name": "n", "trigger": {"type": "webhook"}, "steps": [step]}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].path,
            "steps[0]".to_owned() + &".branches[0].steps[0]".repeat(16)
        );
        assert_eq!(
            problems[0].message,
            "routers are nested too deeply (max 16 levels)"
        );

        // 16 levels are fine.
        let mut step = json!({"name": "leaf", "type": "action", "plugin": "log@1.0.0"});
        for d in (0..16).rev() {
            step = json!({"name": format!("r{d}"), "type": "router", "branches": [
                {"name": "b", "fallback": true, "steps": [step]}
            ]});
        }
        assert!(
            validate_value(&json!({"name": "n", "trigger": {"type": "webhook"}, "steps": [step]}))
                .is_empty()
        );

        let steps: Vec<Value> = (0..1001)
            .map(|i| json!({"name": format!("s{i}"), "type": "action", "plugin": "log@1.0.0"}))
            .collect();
        let problems =
            validate_value(&json!({"name": "n", "trigger": {"type": "webhook"}, "steps": steps}));
        assert_eq!(
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["steps: too many steps: 1001 (max 1000)"]
        );
    }

    #[test]
    fn problems_display_and_serialize() {
        let p = Problems(vec![
            Problem::new("name", "required"),
            Problem::new("", "bad"),
        ]);
        assert_eq!(p.to_string(), "name: required\nbad");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!([{"path": "name", "message": "required"}, {"path": "", "message": "bad"}])
        );
        let e: Box<dyn std::error::Error> = Box::new(p);
        assert!(e.to_string().contains("required"));
        assert_eq!(key_path("input", "x-y"), "input.x-y");
        assert_eq!(key_path("input", "a b"), "input[\"a b\"]");
        assert_eq!(key_path("", "a.b"), "[\"a.b\"]");
    }

    /// Flow YAML is untrusted: an alias bomb ("billion laughs", 10^9 strings from 100 lines)
    /// and nesting deeper than any flow needs are refused by the parser's limits, as one
    /// `invalid YAML` problem, instead of expanding until memory runs out or recursing off the
    /// stack.
    #[test]
    fn yaml_alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            let refs = [prev.as_str(); 10].join(", ");
            bomb.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        for text in [
            bomb,
            "[".repeat(100_000),
            "{a: ".repeat(100_000),
            (0..1_000)
                .map(|d| format!("{}k:\n", " ".repeat(d)))
                .collect(),
        ] {
            let e = parse_document(&text, Format::Yaml).unwrap_err();
            assert_eq!(e.len(), 1, "{e}");
            assert!(e.0[0].message.starts_with("invalid YAML:"), "{e}");
        }
    }

    #[test]
    fn save_problems_name_credential_templates_masks_and_ungranted_secrets() {
        let flow = |auth: Value, steps: Value| json!({"name": "n", "trigger": {"type": "webhook", "auth": auth}, "steps": steps});
        let paths =
            |v: &Value| -> Vec<String> { save_problems(v).into_iter().map(|p| p.path).collect() };
        let reference = flow(
            json!({"type": "standardWebhooks", "secret": "{{secrets.S}}"}),
            json!([]),
        );
        assert!(
            validate_value(&reference).is_empty(),
            "a reference needs no whsec_ prefix"
        );
        assert!(save_problems(&reference).is_empty());
        let templated = flow(
            json!({"type": "bearer", "token": "{{trigger.body.t}}"}),
            json!([]),
        );
        assert_eq!(paths(&templated), ["trigger.auth.token"]);
        assert!(
            validate_value(&templated).is_empty(),
            "a stored flow saved before the rule still loads"
        );
        let masked = flow(
            json!({"type": "header", "header": "X-T", "value": "********"}),
            json!([]),
        );
        assert_eq!(paths(&masked), ["trigger.auth.value"]);

        let steps = json!([
            {"name": "ok", "type": "action", "plugin": "log@0.1.0", "secrets": ["A"],
             "input": {"m": "{{secrets.A}} {{ secrets['A'] }}"}},
            {"name": "r", "type": "router", "branches": [{"name": "b", "fallback": true, "steps": [
                {"name": "bad", "type": "action", "plugin": "log@0.1.0", "secrets": ["A"],
                 "input": {"m": {"deep": ["{{secrets.B}}"]}, "n": "{{steps.ok.output}}"}}
            ]}]}
        ]);
        let problems = save_problems(&flow(json!({"type": "none"}), steps));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].path,
            "steps[1].branches[0].steps[0].input.m.deep[0]"
        );
        assert!(
            problems[0].message.contains("secret B"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[0]
                .message
                .contains("steps[1].branches[0].steps[0].secrets")
        );

        let nested = json!([
            {"name": "count", "type": "threshold", "groupBy": "{{secrets.G}}", "window": "1h",
             "threshold": 2, "crossed": [
                {"name": "alert", "type": "action", "plugin": "log@0.1.0",
                 "input": {"m": "{{secrets.C}}"}}
            ]},
            {"name": "r2", "type": "router", "branches": [
                {"name": "b", "when": [[{"left": "{{secrets.W}}", "operator": "EXISTS"}]], "steps": []}
            ]}
        ]);
        let paths: Vec<String> = save_problems(&flow(json!({"type": "none"}), nested))
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(
            paths,
            [
                "steps[0].groupBy",
                "steps[0].crossed[0].input.m",
                "steps[1].branches[0].when[0][0].left"
            ]
        );

        assert_eq!(
            referenced_secrets(
                &json!({"a": "{{secrets.X}}-{{secrets.Y.z}}", "b": ["{{secrets.X}}", "{{secrets}}"]})
            ),
            ["X", "Y"]
        );
    }
}
