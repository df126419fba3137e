//! `{{ path }}` templates: the only way a flow refers to run data.
//!
//! Templates are deliberately *not* an expression language: a template is a
//! path into the run context (`trigger.body.action`, `steps.notify.output`),
//! nothing is evaluated, so a flow definition can never execute code.
//!
//! Grammar of a path: a first key, then any number of `.key`, `.0`,
//! `[0]`, `['key']` or `["key"]` segments. Whitespace just inside the braces
//! is ignored (`{{ trigger.body }}`). Dot keys may contain letters, digits,
//! `_`, `$` and `-` (so step names such as `notify-slack` work); anything
//! else needs the bracket form.
//!
//! Rendering rules:
//! * a string that is exactly one template (`"{{trigger.body}}"`) renders to
//!   the raw JSON value found (object, number, bool, null...);
//! * templates embedded in text are interpolated: strings as-is, `null` as
//!   nothing, other values as compact JSON;
//! * a path that does not exist renders as the empty string `""`, both for a
//!   whole-string template and inside text. (A whole-string template that
//!   finds an explicit JSON `null` renders as `null`.) The empty string is
//!   what condition operators such as `EXISTS` treat as "missing".

use std::fmt;

use serde_json::Value;

/// One step of a template path; kept public so callers can look values up
/// with an already-parsed path (see [`lookup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// An object key (`.name`, `['name']`, `["name"]`). On an array a key
    /// made only of digits is used as an index.
    Key(String),
    /// An array index (`[0]`, `.0`). On an object it is used as the key
    /// `"0"`, so numeric-looking keys still resolve.
    Index(usize),
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Key(k) => write!(f, "{k}"),
            PathSegment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Part of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Expr(Vec<PathSegment>),
}

/// A compiled template, so hot paths (rendering the same step input for
/// every event) do not re-parse the string each time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Compiles `s`; the error message says what is wrong (unclosed `{{`,
    /// empty expression, malformed path) so validation can report it.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "unclosed \"{{{{\" at byte {}",
                    s.len() - rest.len() + open
                ));
            };
            let expr = &after[..close];
            let path =
                parse_path(expr).map_err(|e| format!("bad path in \"{{{{{expr}}}}}\": {e}"))?;
            parts.push(Part::Expr(path));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// True when the template contains no `{{ }}` at all, so callers can
    /// skip rendering.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders against `ctx` following the module-level rules (whole-string
    /// template keeps the JSON type, missing paths become `""`).
    pub fn render(&self, ctx: &Value) -> Value {
        match self.parts.as_slice() {
            [Part::Expr(path)] => lookup(ctx, path)
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            parts => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(path) => {
                            if let Some(v) = lookup(ctx, path) {
                                push_interpolated(&mut out, v);
                            }
                        }
                    }
                }
                Value::String(out)
            }
        }
    }
}

/// Appends `v` as it appears inside text: strings verbatim, null as nothing,
/// everything else as compact JSON.
fn push_interpolated(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

/// Characters allowed in a dot-notation key.
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '-'
}

/// Parses the inside of `{{ ... }}` (surrounding whitespace allowed) into
/// path segments, so callers can pre-parse paths for [`lookup`].
pub fn parse_path(expr: &str) -> Result<Vec<PathSegment>, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("empty expression".to_owned());
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut segs = Vec::new();
    // First segment: a bare key (or a bracket, for odd root keys).
    if chars[0] != '[' {
        let (seg, next) = read_dot_key(&chars, 0)?;
        segs.push(seg);
        i = next;
    }
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let (seg, next) = read_dot_key(&chars, i + 1)?;
                segs.push(seg);
                i = next;
            }
            '[' => {
                let (seg, next) = read_bracket(&chars, i)?;
                segs.push(seg);
                i = next;
            }
            c => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(segs)
}

/// Reads a dot key starting at `start`; all-digit keys become indexes.
fn read_dot_key(chars: &[char], start: usize) -> Result<(PathSegment, usize), String> {
    let mut end = start;
    while end < chars.len() && is_key_char(chars[end]) {
        end += 1;
    }
    if end == start {
        return match chars.get(start) {
            None => Err("path ends with '.'".to_owned()),
            Some(c) => Err(format!("expected a key, found '{c}'")),
        };
    }
    let key: String = chars[start..end].iter().collect();
    let seg = if key.bytes().all(|b| b.is_ascii_digit()) {
        match key.parse::<usize>() {
            Ok(n) => PathSegment::Index(n),
            Err(_) => PathSegment::Key(key),
        }
    } else {
        PathSegment::Key(key)
    };
    Ok((seg, end))
}

/// Reads `[0]`, `['key']` or `["key"]` starting at the `[`.
fn read_bracket(chars: &[char], start: usize) -> Result<(PathSegment, usize), String> {
    let mut i = start + 1;
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    let seg = match chars.get(i) {
        Some(&q) if q == '\'' || q == '"' => {
            i += 1;
            let mut key = String::new();
            loop {
                match chars.get(i) {
                    None => return Err("unterminated quoted key".to_owned()),
                    Some('\\') => {
                        let Some(&c) = chars.get(i + 1) else {
                            return Err("unterminated quoted key".to_owned());
                        };
                        key.push(c);
                        i += 2;
                    }
                    Some(&c) if c == q => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        key.push(c);
                        i += 1;
                    }
                }
            }
            PathSegment::Key(key)
        }
        Some(c) if c.is_ascii_digit() => {
            let begin = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[begin..i].iter().collect();
            let n = digits
                .parse::<usize>()
                .map_err(|_| format!("index {digits} is too large"))?;
            PathSegment::Index(n)
        }
        Some(c) => {
            return Err(format!(
                "expected an index or a quoted key after '[', found '{c}'"
            ));
        }
        None => return Err("unclosed '['".to_owned()),
    };
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    match chars.get(i) {
        Some(']') => Ok((seg, i + 1)),
        Some(c) => Err(format!("expected ']', found '{c}'")),
        None => Err("unclosed '['".to_owned()),
    }
}

/// Follows `path` inside `ctx`; `None` when any segment is missing. Keys
/// index arrays when they are numeric and indexes address objects by their
/// decimal key, so `items.0` and `items[0]` behave the same.
pub fn lookup<'a>(ctx: &'a Value, path: &[PathSegment]) -> Option<&'a Value> {
    let mut cur = ctx;
    for seg in path {
        cur = match (seg, cur) {
            (PathSegment::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSegment::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            (PathSegment::Index(i), Value::Array(a)) => a.get(*i)?,
            (PathSegment::Index(i), Value::Object(m)) => m.get(&i.to_string())?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Renders one string. Strings without `{{` are returned untouched without
/// any parsing; a string whose template does not parse (validation rejects
/// those up front) is returned verbatim rather than failing a run.
pub fn render_str(s: &str, ctx: &Value) -> Value {
    if !s.contains("{{") {
        return Value::String(s.to_owned());
    }
    match Template::parse(s) {
        Ok(t) => t.render(ctx),
        Err(_) => Value::String(s.to_owned()),
    }
}

/// Renders every string inside `value` (recursively through arrays and
/// object values; object keys are never templated) so step inputs and
/// condition operands can be any JSON shape.
pub fn render(value: &Value, ctx: &Value) -> Value {
    match value {
        Value::String(s) => render_str(s, ctx),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, ctx)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, ctx)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks the template syntax of one string so validation can point at
/// the exact field before a flow is saved.
pub fn check(s: &str) -> Result<(), String> {
    if !s.contains("{{") {
        return Ok(());
    }
    Template::parse(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "trigger": {
                "body": {
                    "action": "flow.run.finished",
                    "data": {"flowRun": {"id": "r1", "status": "FAILED", "attempt": 3}},
                    "items": [{"id": "a"}, {"id": "b"}],
                    "flag": false,
                    "nothing": null,
                    "weird key": "w",
                    "200": "ok"
                },
                "headers": {"x-gitlab-event": "push"},
                "query": {}
            },
            "steps": {"notify-slack": {"output": {"ok": true}, "status": "SUCCEEDED"}},
            "run": {"id": "run-1", "flowId": "f1"}
        })
    }

    #[test]
    fn whole_string_keeps_type() {
        let c = ctx();
        assert_eq!(
            render_str("{{trigger.body.data.flowRun.attempt}}", &c),
            json!(3)
        );
        assert_eq!(
            render_str("{{ trigger.body.data.flowRun }}", &c),
            json!({"id": "r1", "status": "FAILED", "attempt": 3})
        );
        assert_eq!(render_str("{{trigger.body.flag}}", &c), json!(false));
        assert_eq!(render_str("{{trigger.body.nothing}}", &c), Value::Null);
    }

    #[test]
    fn missing_is_empty_string() {
        let c = ctx();
        assert_eq!(render_str("{{trigger.body.nope}}", &c), json!(""));
        assert_eq!(render_str("{{trigger.body.action.deeper}}", &c), json!(""));
        assert_eq!(render_str("x{{trigger.nope}}y", &c), json!("xy"));
    }

    #[test]
    fn interpolation() {
        let c = ctx();
        assert_eq!(
            render_str(
                "Run {{trigger.body.data.flowRun.id}} is {{ trigger.body.data.flowRun.status }}",
                &c
            ),
            json!("Run r1 is FAILED")
        );
        assert_eq!(
            render_str("n={{trigger.body.data.flowRun.attempt}}", &c),
            json!("n=3")
        );
        assert_eq!(
            render_str("o={{steps.notify-slack.output}}", &c),
            json!("o={\"ok\":true}")
        );
        assert_eq!(
            render_str("null=[{{trigger.body.nothing}}]", &c),
            json!("null=[]")
        );
        assert_eq!(render_str(" {{run.id}} ", &c), json!(" run-1 "));
    }

    #[test]
    fn bracket_and_index_forms() {
        let c = ctx();
        assert_eq!(
            render_str("{{trigger['body']['action']}}", &c),
            json!("flow.run.finished")
        );
        assert_eq!(
            render_str("{{trigger[\"body\"][\"weird key\"]}}", &c),
            json!("w")
        );
        assert_eq!(render_str("{{trigger.body.items[1].id}}", &c), json!("b"));
        assert_eq!(render_str("{{trigger.body.items.0.id}}", &c), json!("a"));
        assert_eq!(
            render_str("{{trigger.body[ 'items' ][ 0 ]['id']}}", &c),
            json!("a")
        );
        assert_eq!(render_str("{{trigger.body.200}}", &c), json!("ok"));
        assert_eq!(render_str("{{trigger.body.items[5].id}}", &c), json!(""));
        assert_eq!(
            render_str("{{trigger.headers.x-gitlab-event}}", &c),
            json!("push")
        );
        assert_eq!(render_str("{{['run'].id}}", &c), json!("run-1"));
        assert_eq!(
            render_str("{{trigger['it\\'s']}}", &json!({"trigger": {"it's": 1}})),
            json!(1)
        );
    }

    #[test]
    fn render_recurses_but_not_keys() {
        let c = ctx();
        let v = json!({"{{run.id}}": ["{{run.id}}", 1, {"k": "{{trigger.body.flag}}"}], "n": null});
        assert_eq!(
            render(&v, &c),
            json!({"{{run.id}}": ["run-1", 1, {"k": false}], "n": null})
        );
    }

    #[test]
    fn plain_strings_untouched() {
        let c = ctx();
        assert_eq!(
            render_str("no templates } here {", &c),
            json!("no templates } here {")
        );
        assert_eq!(render_str("}}", &c), json!("}}"));
        assert!(check("plain").is_ok());
        assert!(Template::parse("plain").unwrap().is_literal());
        assert!(!Template::parse("{{a}}").unwrap().is_literal());
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "{{trigger.body",
            "x {{ }} y",
            "{{a..b}}",
            "{{a.}}",
            "{{.a}}",
            "{{a[}}",
            "{{a[x]}}",
            "{{a['x]}}",
            "{{a b}}",
            "{{a + 1}}",
            "{{a[0}}",
        ] {
            assert!(check(bad).is_err(), "{bad} should be rejected");
        }
        assert!(check("{{a}} and {{b[0]['c'].d}}").is_ok());
        let msg = check("hello {{trigger").unwrap_err();
        assert!(msg.contains("unclosed"), "{msg}");
        // Invalid templates render verbatim at run time.
        assert_eq!(render_str("{{a b}}", &ctx()), json!("{{a b}}"));
    }

    #[test]
    fn compiled_template_reuse() {
        let t = Template::parse("{{run.id}}/{{run.flowId}}").unwrap();
        assert_eq!(t.render(&ctx()), json!("run-1/f1"));
        assert_eq!(t.render(&json!({})), json!("/"));
        let path = parse_path("trigger.body.items[0].id").unwrap();
        assert_eq!(lookup(&ctx(), &path), Some(&json!("a")));
        assert_eq!(lookup(&ctx(), &[]), Some(&ctx()));
    }
}
