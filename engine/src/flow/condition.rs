//! Router conditions, evaluated exactly like Activepieces evaluates branch
//! conditions, so flows (and users' expectations) carry over unchanged.
//!
//! Mirrored source: `packages/engine/src/lib/handler/router-executor.ts`
//! in `activepieces/activepieces` (function `evaluateConditions` and its
//! helpers `toLowercaseIfCaseInsensitive`, `parseStringToNumber`,
//! `parseListAsArray`, `parseAndCoerceListAsArray`, `isValidDate`), as of
//! commit `06954bca593295a4dc548d1f1a6b0444ad726c67`. JavaScript coercions
//! that the TypeScript relies on are reproduced here:
//!
//! * **Text** operators compare strings; non-strings are first turned into
//!   text with `JSON.stringify` (so `5` is `"5"`, `null` is `"null"`, an
//!   object is its compact JSON). Unless `caseSensitive`, both sides are
//!   lowercased. `""` is contained in / a prefix of every text.
//! * **LIST_CONTAINS / LIST_DOES_NOT_CONTAIN**: a string left operand is
//!   `JSON.parse`d (a non-array result becomes a one-item list, a parse
//!   failure makes the raw string a one-item list); a non-list becomes a
//!   one-item list. An item matches when its text form (as above) equals the
//!   right operand's text form, so `[1, 2]` contains `"1"`.
//! * **LIST_IS_EMPTY / LIST_IS_NOT_EMPTY**: only real lists (or strings that
//!   `JSON.parse` to a list) qualify; anything else (including `""`, `null`)
//!   makes *both* operators false.
//! * **NUMBER_*** use `Number(x)`: `""`, `null` and `false` are 0, `true` is
//!   1, `" 12 "` is 12, `"0x1A"` is 26, `[5]` is 5. When `Number(x)` is NaN
//!   the raw value is compared with JavaScript's `>`/`<`/`==`: two such
//!   strings compare lexicographically (`"b" > "a"`), a number against a
//!   non-numeric string is always false.
//! * **BOOLEAN_IS_TRUE / FALSE** use JavaScript truthiness: `false`, `0`,
//!   `""` and `null` are falsy; everything else, including the *string*
//!   `"false"`, `"0"`, `[]` and `{}`, is truthy.
//! * **DATE_*** accept strings and numbers (epoch milliseconds) only and are
//!   false when either side is not a valid date. Strings are parsed like
//!   `dayjs(x)`: first dayjs' own pattern (`2024-03-07`, `2024/3/7 10:00`,
//!   `20240307`; fractional seconds keep only the first three digits as
//!   milliseconds, so `.5` is 5 ms, as in dayjs) unless the string ends in
//!   `Z`, otherwise the JavaScript `Date` parser. Deviations: times without
//!   an offset are taken as UTC (the engine runs in UTC, where JavaScript
//!   would use the server's local zone), and instead of V8's lenient legacy
//!   parser only ISO 8601 / RFC 3339 (with `Z`, `±HH:MM` or `±HHMM`),
//!   RFC 2822 and `M/D/YYYY[ HH:MM[:SS]]` are understood. Comparison is to
//!   the millisecond.
//! * **EXISTS / DOES_NOT_EXIST**: a value exists unless it is `null` or
//!   `""`. A template whose path is missing renders as `""`, so it does not
//!   exist (Activepieces' `undefined`).
//!
//! Choice for a missing `right` on a binary operator (validation forbids
//! it; Activepieces would throw): it is compared as `""`.

use std::cmp::Ordering;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::calendar;
use super::model::{Condition, Operator};
use super::template;

/// The outcome of one condition, with the operands after templating, so
/// run traces show exactly what was compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionResult {
    /// Left operand after rendering templates.
    pub left: Value,
    /// The operator applied.
    pub operator: Operator,
    /// Right operand after rendering (absent for unary operators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right: Option<Value>,
    /// Whether text comparison kept case.
    pub case_sensitive: bool,
    /// The verdict.
    pub result: bool,
}

/// Renders both operands against `ctx` and applies the operator.
pub fn evaluate_condition(c: &Condition, ctx: &Value) -> ConditionResult {
    let left = template::render(&c.left, ctx);
    let right = if c.operator.is_unary() {
        None
    } else {
        c.right.as_ref().map(|r| template::render(r, ctx))
    };
    let empty = Value::String(String::new());
    let right_value = right.as_ref().unwrap_or(&empty);
    let result = match c.time_zone.as_deref().map(calendar::parse_zone) {
        // Validation refuses an unknown zone; one that slipped through matches nothing.
        Some(Err(_)) => false,
        Some(Ok(zone)) if c.operator.is_calendar() => {
            calendar_operator(c.operator, &left, right_value, zone)
        }
        _ => apply_operator(c.operator, &left, right_value, c.case_sensitive),
    };
    ConditionResult {
        left,
        operator: c.operator,
        right,
        case_sensitive: c.case_sensitive,
        result,
    }
}

/// OR of AND-groups, like Activepieces. Every condition is evaluated (no
/// short-circuit) so the trace is complete. No groups at all is `false`; an
/// empty group is `true`.
pub fn evaluate_groups(
    groups: &[Vec<Condition>],
    ctx: &Value,
) -> (bool, Vec<Vec<ConditionResult>>) {
    let mut any = false;
    let mut trace = Vec::with_capacity(groups.len());
    for group in groups {
        let results: Vec<ConditionResult> =
            group.iter().map(|c| evaluate_condition(c, ctx)).collect();
        any |= results.iter().all(|r| r.result);
        trace.push(results);
    }
    (any, trace)
}

/// Applies an operator to already-rendered operands (`right` is ignored by
/// unary operators). Public so the engine and tests can reuse the exact
/// semantics without building a [`Condition`].
pub fn apply_operator(op: Operator, left: &Value, right: &Value, case_sensitive: bool) -> bool {
    let text = |v: &Value| to_lowercase_if_case_insensitive(v, case_sensitive);
    match op {
        Operator::TextContains => text(left).contains(&text(right)),
        Operator::TextDoesNotContain => !text(left).contains(&text(right)),
        Operator::TextExactlyMatches => text(left) == text(right),
        Operator::TextDoesNotExactlyMatch => text(left) != text(right),
        Operator::TextStartsWith => text(left).starts_with(&text(right)),
        Operator::TextDoesNotStartWith => !text(left).starts_with(&text(right)),
        Operator::TextEndsWith => text(left).ends_with(&text(right)),
        Operator::TextDoesNotEndWith => !text(left).ends_with(&text(right)),
        Operator::ListContains => {
            let needle = text(right);
            parse_and_coerce_list(left)
                .iter()
                .any(|i| text(i) == needle)
        }
        Operator::ListDoesNotContain => {
            let needle = text(right);
            !parse_and_coerce_list(left)
                .iter()
                .any(|i| text(i) == needle)
        }
        Operator::ListIsEmpty => parse_list(left).is_some_and(|l| l.is_empty()),
        Operator::ListIsNotEmpty => parse_list(left).is_some_and(|l| !l.is_empty()),
        Operator::NumberIsGreaterThan => {
            js_compare(&to_operand(left), &to_operand(right)) == Some(Ordering::Greater)
        }
        Operator::NumberIsLessThan => {
            js_compare(&to_operand(left), &to_operand(right)) == Some(Ordering::Less)
        }
        Operator::NumberIsEqualTo => js_loose_eq(&to_operand(left), &to_operand(right)),
        Operator::BooleanIsTrue => truthy(left),
        Operator::BooleanIsFalse => !truthy(left),
        Operator::DateIsAfter => date_cmp(left, right) == Some(Ordering::Greater),
        Operator::DateIsBefore => date_cmp(left, right) == Some(Ordering::Less),
        Operator::DateIsEqual => date_cmp(left, right) == Some(Ordering::Equal),
        Operator::Exists => !is_missing(left),
        Operator::DoesNotExist => is_missing(left),
        op @ (Operator::TimeOfDayIsBetween
        | Operator::TimeOfDayIsNotBetween
        | Operator::DayOfWeekIs
        | Operator::DayOfWeekIsNot) => calendar_operator(op, left, right, chrono_tz::Tz::UTC),
    }
}

/// A calendar operator in `zone`; false when the left operand is not a date or the right
/// one is not a range or day list (for the operator and its negation alike).
fn calendar_operator(op: Operator, left: &Value, right: &Value, zone: chrono_tz::Tz) -> bool {
    let Some(at) = dayjs_ms(left) else {
        return false;
    };
    let verdict = match op {
        Operator::TimeOfDayIsBetween | Operator::TimeOfDayIsNotBetween => {
            calendar::time_of_day_between(at, right, zone)
        }
        _ => calendar::day_of_week_is(at, right, zone),
    };
    match verdict {
        Some(inside) => {
            inside
                != matches!(
                    op,
                    Operator::TimeOfDayIsNotBetween | Operator::DayOfWeekIsNot
                )
        }
        None => false,
    }
}

/// `undefined || null || ''` in Activepieces; `""` also stands for a
/// missing template path here.
fn is_missing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// JavaScript `!!v`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `toLowercaseIfCaseInsensitive`: strings as-is, others via
/// `JSON.stringify`, lowercased unless case-sensitive.
fn to_lowercase_if_case_insensitive(v: &Value, case_sensitive: bool) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => js_stringify(other),
    };
    if case_sensitive { s } else { s.to_lowercase() }
}

/// `JSON.parse` of a string (serde_json is as strict as `JSON.parse`).
fn json_parse(s: &str) -> Option<Value> {
    serde_json::from_str(s).ok()
}

/// `parseListAsArray`: a list, a string holding a JSON list, else nothing.
fn parse_list(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::String(s) => match json_parse(s) {
            Some(Value::Array(a)) => Some(a),
            _ => None,
        },
        Value::Array(a) => Some(a.clone()),
        _ => None,
    }
}

/// `parseAndCoerceListAsArray`: like [`parse_list`] but wraps anything
/// else into a one-item list.
fn parse_and_coerce_list(v: &Value) -> Vec<Value> {
    match v {
        Value::String(s) => match json_parse(s) {
            Some(Value::Array(a)) => a,
            Some(other) => vec![other],
            None => vec![v.clone()],
        },
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

/// `JSON.stringify` (compact; numbers formatted like JavaScript, so `1.0`
/// is `1`).
fn js_stringify(v: &Value) -> String {
    let mut out = String::new();
    write_js_json(&mut out, v);
    out
}

fn write_js_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.is_finite() {
                out.push_str(&js_number_to_string(f));
            } else {
                out.push_str("null");
            }
        }
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_js_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_js_json(out, item);
            }
            out.push('}');
        }
    }
}

/// JavaScript `Number.prototype.toString()` (ECMAScript Number::toString).
fn js_number_to_string(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f == 0.0 {
        return "0".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    // Rust's `{:e}` gives the shortest round-trip digits, like JavaScript.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let k = digits.len() as i64;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let esign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{esign}{}", e.abs())
        } else {
            format!("{}.{}e{esign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

/// JavaScript `String(v)` for JSON values.
fn js_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                if i.is_null() {
                    String::new()
                } else {
                    js_to_string(i)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// JavaScript `Number(v)`.
fn js_to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(_) => string_to_number(&js_to_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// ECMAScript StrWhiteSpaceChar.
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// ECMAScript StringToNumber.
fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_whitespace);
    if t.is_empty() {
        return 0.0;
    }
    let radix = match t.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        let digits = &t[2..];
        if digits.is_empty() {
            return f64::NAN;
        }
        let mut acc = 0.0f64;
        for c in digits.chars() {
            match c.to_digit(radix) {
                Some(d) => acc = acc * f64::from(radix) + f64::from(d),
                None => return f64::NAN,
            }
        }
        return acc;
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned == "Infinity" {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if !is_decimal_literal(unsigned) {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// `digits[.digits][e[+-]digits]` or `.digits[e...]` (no sign).
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Result of `parseStringToNumber`: a number, or the raw value when
/// `Number(x)` is NaN.
enum Operand<'a> {
    Num(f64),
    Raw(&'a Value),
}

fn to_operand(v: &Value) -> Operand<'_> {
    let n = js_to_number(v);
    if n.is_nan() {
        Operand::Raw(v)
    } else {
        Operand::Num(n)
    }
}

/// Compares strings by UTF-16 code units, like JavaScript's `<` on strings.
fn js_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// JavaScript's abstract relational comparison on two operands: `None`
/// when the comparison is undefined (NaN involved), so both `>` and `<` are
/// false.
fn js_compare(a: &Operand<'_>, b: &Operand<'_>) -> Option<Ordering> {
    match (a, b) {
        (Operand::Num(x), Operand::Num(y)) => x.partial_cmp(y),
        // Both sides become primitive strings (arrays join, objects are
        // "[object Object]") and compare as strings.
        (Operand::Raw(x), Operand::Raw(y)) => {
            Some(js_string_cmp(&js_to_string(x), &js_to_string(y)))
        }
        // A string whose Number() is NaN against a number: NaN, false.
        _ => None,
    }
}

/// JavaScript `==` on two operands.
fn js_loose_eq(a: &Operand<'_>, b: &Operand<'_>) -> bool {
    match (a, b) {
        (Operand::Num(x), Operand::Num(y)) => x == y,
        (Operand::Raw(Value::String(x)), Operand::Raw(Value::String(y))) => x == y,
        // Two distinct objects/arrays: reference equality, never equal.
        (Operand::Raw(x), Operand::Raw(y)) if !x.is_string() && !y.is_string() => false,
        // String vs object: the object becomes its primitive string.
        (Operand::Raw(x), Operand::Raw(y)) => js_to_string(x) == js_to_string(y),
        _ => false,
    }
}

/// Both operands as dates (epoch ms) compared, `None` when either is not a
/// valid date (`isValidDate`).
fn date_cmp(left: &Value, right: &Value) -> Option<Ordering> {
    let l = dayjs_ms(left)?;
    let r = dayjs_ms(right)?;
    Some(l.cmp(&r))
}

/// Milliseconds since the epoch as `dayjs(v)` would compute them (see the
/// module docs for the UTC assumption); `None` for invalid dates and for
/// values other than strings and numbers.
fn dayjs_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => time_clip(n.as_f64()?),
        Value::String(s) => {
            let ends_with_z = s.ends_with(['Z', 'z']);
            if !ends_with_z && let Some(c) = DAYJS_REGEX.captures(s) {
                let num = |i: usize| c.get(i).map(|m| m.as_str().parse::<i64>().unwrap_or(0));
                let year = num(1).unwrap_or(0);
                // `d[2] - 1 || 0`
                let month0 = num(2).map_or(0, |m| m - 1);
                // `d[3] || 1`: an empty match counts as missing, "0" is kept.
                let day = match c.get(3).map(|m| m.as_str()) {
                    Some(d) if !d.is_empty() => d.parse::<i64>().unwrap_or(0),
                    _ => 1,
                };
                let ms = c
                    .get(7)
                    .map(|m| m.as_str().chars().take(3).collect::<String>())
                    .map_or(0, |m| m.parse::<i64>().unwrap_or(0));
                // `new Date(y, ...)` maps years 0..=99 to 1900..=1999.
                let year = if (0..=99).contains(&year) {
                    year + 1900
                } else {
                    year
                };
                return make_time(
                    year,
                    month0,
                    day,
                    num(4).unwrap_or(0),
                    num(5).unwrap_or(0),
                    num(6).unwrap_or(0),
                    ms,
                );
            }
            js_date_parse(s)
        }
        _ => None,
    }
}

/// dayjs' `REGEX_PARSE` (with ASCII digits, as JavaScript's `\d`).
static DAYJS_REGEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})[-/]?([0-9]{1,2})?[-/]?([0-9]{0,2})[Tt\s]*([0-9]{1,2})?:?([0-9]{1,2})?:?([0-9]{1,2})?[.:]?([0-9]+)?$",
    )
    .expect("static regex")
});

/// ISO 8601 / ECMAScript date-time strings (lenient on separator and
/// fraction length, like V8).
static ISO_REGEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([+-][0-9]{6}|[0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?\s*([Zz]|[+-][0-9]{2}:?[0-9]{2})?$",
    )
    .expect("static regex")
});

/// `M/D/YYYY[ HH:MM[:SS]]`, the common US form V8's legacy parser takes.
static US_DATE_REGEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?$",
    )
    .expect("static regex")
});

/// ECMAScript TimeClip: out-of-range or non-finite times are invalid.
fn time_clip(t: f64) -> Option<i64> {
    if t.is_finite() && t.abs() <= 8.64e15 {
        Some(t.trunc() as i64)
    } else {
        None
    }
}

/// ECMAScript MakeDate(MakeDay(y, m, d), MakeTime(h, min, s, ms)) with the
/// same overflow behaviour (month 13 is next January, day 0 is the last day
/// of the previous month).
fn make_time(year: i64, month0: i64, day: i64, h: i64, min: i64, s: i64, ms: i64) -> Option<i64> {
    let y = year.checked_add(month0.div_euclid(12))?;
    let m = month0.rem_euclid(12) as u32 + 1;
    let first = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, 1)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let days = first.signed_duration_since(epoch).num_days() + day - 1;
    let t = days as f64 * 86_400_000.0
        + h as f64 * 3_600_000.0
        + min as f64 * 60_000.0
        + s as f64 * 1000.0
        + ms as f64;
    time_clip(t)
}

/// The subset of JavaScript's `Date.parse` described in the module docs.
fn js_date_parse(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(c) = ISO_REGEX.captures(s) {
        let num = |i: usize, default: i64| {
            c.get(i)
                .map_or(Some(default), |m| m.as_str().parse::<i64>().ok())
        };
        let year = num(1, 0)?;
        let month = num(2, 1)?;
        let day = num(3, 1)?;
        let hour = num(4, 0)?;
        let minute = num(5, 0)?;
        let second = num(6, 0)?;
        let ms = c.get(7).map_or(Some(0), |m| {
            format!("{:0<3}", &m.as_str()[..m.as_str().len().min(3)])
                .parse::<i64>()
                .ok()
        })?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 24
            || minute > 59
            || second > 59
            || (hour == 24 && (minute > 0 || second > 0 || ms > 0))
        {
            return None;
        }
        let offset_min = match c.get(8).map(|m| m.as_str()) {
            None | Some("Z" | "z") => 0,
            Some(o) => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let digits: String = o[1..].chars().filter(char::is_ascii_digit).collect();
                let hh: i64 = digits[..2].parse().ok()?;
                let mm: i64 = digits[2..].parse().ok()?;
                if hh > 23 || mm > 59 {
                    return None;
                }
                sign * (hh * 60 + mm)
            }
        };
        let local = make_time(year, month - 1, day, hour, minute, second, ms)?;
        return time_clip((local - offset_min * 60_000) as f64);
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(s) {
        return Some(dt.timestamp_millis());
    }
    if let Some(c) = US_DATE_REGEX.captures(s) {
        let num = |i: usize| {
            c.get(i)
                .map_or(0, |m| m.as_str().parse::<i64>().unwrap_or(0))
        };
        let (month, day) = (num(1), num(2));
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        return make_time(num(3), month - 1, day, num(4), num(5), num(6), 0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(o: Operator, l: Value, r: Value) -> bool {
        apply_operator(o, &l, &r, false)
    }

    fn op_cs(o: Operator, l: Value, r: Value) -> bool {
        apply_operator(o, &l, &r, true)
    }

    use Operator::*;

    #[test]
    fn text_contains() {
        assert!(op(TextContains, json!("Hello World"), json!("world")));
        assert!(!op_cs(TextContains, json!("Hello World"), json!("world")));
        assert!(op_cs(TextContains, json!("Hello World"), json!("World")));
        assert!(!op(TextContains, json!("Hello"), json!("bye")));
        assert!(op(TextContains, json!("abc"), json!("")));
        // Non-strings are JSON-stringified.
        assert!(op(TextContains, json!(12345), json!(234)));
        assert!(op(TextContains, json!({"A": 1}), json!("\"a\":1")));
        assert!(!op_cs(TextContains, json!({"A": 1}), json!("\"a\":1")));
        assert!(op(TextContains, json!(null), json!("nul")));
        assert!(op(TextContains, json!([1.0, 2]), json!("[1,2]")));
    }

    #[test]
    fn text_does_not_contain() {
        assert!(op(TextDoesNotContain, json!("Hello"), json!("bye")));
        assert!(!op(TextDoesNotContain, json!("Hello"), json!("HELL")));
        assert!(op_cs(TextDoesNotContain, json!("Hello"), json!("HELL")));
        assert!(!op(TextDoesNotContain, json!(""), json!("")));
    }

    #[test]
    fn text_exactly_matches() {
        assert!(op(
            TextExactlyMatches,
            json!("flow.run.finished"),
            json!("FLOW.RUN.FINISHED")
        ));
        assert!(!op_cs(
            TextExactlyMatches,
            json!("flow.run.finished"),
            json!("FLOW.RUN.FINISHED")
        ));
        assert!(op_cs(TextExactlyMatches, json!("a"), json!("a")));
        assert!(!op(TextExactlyMatches, json!("a"), json!("b")));
        assert!(op(TextExactlyMatches, json!(5), json!("5")));
        assert!(op(TextExactlyMatches, json!(5.0), json!(5)));
        assert!(op(TextExactlyMatches, json!(true), json!("TRUE")));
        assert!(!op_cs(TextExactlyMatches, json!(true), json!("TRUE")));
        assert!(op(TextExactlyMatches, json!(null), json!("null")));
        assert!(op(TextExactlyMatches, json!(""), json!("")));
    }

    #[test]
    fn text_does_not_exactly_match() {
        assert!(op(TextDoesNotExactlyMatch, json!("a"), json!("b")));
        assert!(!op(TextDoesNotExactlyMatch, json!("A"), json!("a")));
        assert!(op_cs(TextDoesNotExactlyMatch, json!("A"), json!("a")));
    }

    #[test]
    fn text_starts_and_ends() {
        assert!(op(
            TextStartsWith,
            json!("Pipeline failed"),
            json!("pipeline")
        ));
        assert!(!op_cs(
            TextStartsWith,
            json!("Pipeline failed"),
            json!("pipeline")
        ));
        assert!(!op(
            TextStartsWith,
            json!("Pipeline failed"),
            json!("failed")
        ));
        assert!(op(TextStartsWith, json!(2024), json!(20)));

        assert!(op(TextDoesNotStartWith, json!("abc"), json!("b")));
        assert!(!op(TextDoesNotStartWith, json!("abc"), json!("A")));
        assert!(op_cs(TextDoesNotStartWith, json!("abc"), json!("A")));

        assert!(op(TextEndsWith, json!("report.PDF"), json!(".pdf")));
        assert!(!op_cs(TextEndsWith, json!("report.PDF"), json!(".pdf")));
        assert!(!op(TextEndsWith, json!("report.pdf"), json!(".doc")));

        assert!(op(TextDoesNotEndWith, json!("report.pdf"), json!(".doc")));
        assert!(!op(TextDoesNotEndWith, json!("report.pdf"), json!(".PDF")));
        assert!(op_cs(
            TextDoesNotEndWith,
            json!("report.pdf"),
            json!(".PDF")
        ));
    }

    #[test]
    fn list_contains() {
        assert!(op(ListContains, json!(["a", "B"]), json!("b")));
        assert!(!op_cs(ListContains, json!(["a", "B"]), json!("b")));
        assert!(!op(ListContains, json!(["a", "B"]), json!("c")));
        // Items and needle compared as text.
        assert!(op(ListContains, json!([1, 2]), json!("2")));
        assert!(op(ListContains, json!([1, 2]), json!(2)));
        assert!(op(ListContains, json!([{"a": 1}]), json!({"a": 1})));
        // Strings are JSON.parse'd...
        assert!(op(ListContains, json!("[\"x\", \"y\"]"), json!("Y")));
        assert!(op(ListContains, json!("42"), json!(42)));
        // ...and otherwise treated as a one-item list.
        assert!(op(ListContains, json!("admin"), json!("ADMIN")));
        assert!(!op(ListContains, json!("admins"), json!("admin")));
        assert!(op(ListContains, json!(7), json!("7")));
        assert!(op(ListContains, json!(null), json!("null")));
        assert!(!op(ListContains, json!([]), json!("")));
    }

    #[test]
    fn list_does_not_contain() {
        assert!(op(ListDoesNotContain, json!(["a"]), json!("b")));
        assert!(!op(ListDoesNotContain, json!(["a"]), json!("A")));
        assert!(op_cs(ListDoesNotContain, json!(["a"]), json!("A")));
        assert!(op(ListDoesNotContain, json!([]), json!("a")));
        assert!(!op(ListDoesNotContain, json!("[1,2]"), json!(1)));
    }

    #[test]
    fn list_is_empty_and_not_empty() {
        assert!(op(ListIsEmpty, json!([]), Value::Null));
        assert!(op(ListIsEmpty, json!("[]"), Value::Null));
        assert!(op(ListIsEmpty, json!(" [ ] "), Value::Null));
        assert!(!op(ListIsEmpty, json!([1]), Value::Null));
        assert!(op(ListIsNotEmpty, json!([1]), Value::Null));
        assert!(op(ListIsNotEmpty, json!("[null]"), Value::Null));
        assert!(!op(ListIsNotEmpty, json!([]), Value::Null));
        // Non-lists make both false.
        for v in [
            json!(""),
            json!(null),
            json!("abc"),
            json!({}),
            json!(0),
            json!("{}"),
        ] {
            assert!(!op(ListIsEmpty, v.clone(), Value::Null), "{v}");
            assert!(!op(ListIsNotEmpty, v.clone(), Value::Null), "{v}");
        }
    }

    #[test]
    fn number_comparisons() {
        assert!(op(NumberIsGreaterThan, json!(5), json!(3)));
        assert!(!op(NumberIsGreaterThan, json!(3), json!(5)));
        assert!(!op(NumberIsGreaterThan, json!(3), json!(3)));
        assert!(op(NumberIsGreaterThan, json!("10"), json!("9")));
        assert!(op(NumberIsGreaterThan, json!(" 1e3 "), json!(999.5)));
        assert!(op(NumberIsGreaterThan, json!("0x1A"), json!(25)));
        assert!(op(NumberIsGreaterThan, json!(true), json!(0)));
        assert!(op(NumberIsGreaterThan, json!([5]), json!(4)));
        assert!(op(NumberIsGreaterThan, json!("Infinity"), json!(1e300)));
        // Non-numeric strings compare as strings with each other...
        assert!(op(NumberIsGreaterThan, json!("b"), json!("a")));
        assert!(!op(NumberIsGreaterThan, json!("a"), json!("b")));
        // ...and are never comparable with numbers.
        assert!(!op(NumberIsGreaterThan, json!("abc"), json!(1)));
        assert!(!op(NumberIsLessThan, json!("abc"), json!(1)));
        assert!(!op(NumberIsGreaterThan, json!({}), json!(1)));

        assert!(op(NumberIsLessThan, json!(-1), json!(0)));
        assert!(op(NumberIsLessThan, json!("2.5"), json!("2.51")));
        assert!(!op(NumberIsLessThan, json!(1), json!(1)));
        // Missing ("") and null are 0.
        assert!(op(NumberIsLessThan, json!(""), json!(1)));
        assert!(op(NumberIsLessThan, json!(null), json!(0.5)));

        assert!(op(NumberIsEqualTo, json!(1), json!("1.0")));
        assert!(op(NumberIsEqualTo, json!("  42\n"), json!(42)));
        assert!(op(NumberIsEqualTo, json!(""), json!(0)));
        assert!(op(NumberIsEqualTo, json!(null), json!(false)));
        assert!(op(NumberIsEqualTo, json!("abc"), json!("abc")));
        assert!(op(
            NumberIsEqualTo,
            json!("[object Object]"),
            json!({"a": 1})
        ));
        assert!(!op(NumberIsEqualTo, json!({"a": 1}), json!({"a": 1})));
        assert!(!op(NumberIsEqualTo, json!(1), json!(2)));
        assert!(!op(NumberIsEqualTo, json!("abc"), json!(0)));
        assert!(!op(NumberIsEqualTo, json!("1_000"), json!(1000)));
        assert!(!op(NumberIsEqualTo, json!("-0x10"), json!(-16)));
        assert!(op(NumberIsEqualTo, json!("0b101"), json!(5)));
        assert!(op(NumberIsEqualTo, json!(".5"), json!(0.5)));
        assert!(op(NumberIsEqualTo, json!("5."), json!(5)));
        assert!(!op(NumberIsEqualTo, json!("inf"), json!("Infinity")));
    }

    #[test]
    fn booleans_use_truthiness() {
        for v in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("false"),
            json!("0"),
            json!([]),
            json!({}),
            json!(" "),
        ] {
            assert!(op(BooleanIsTrue, v.clone(), Value::Null), "{v}");
            assert!(!op(BooleanIsFalse, v.clone(), Value::Null), "{v}");
        }
        for v in [json!(false), json!(0), json!(0.0), json!(""), json!(null)] {
            assert!(!op(BooleanIsTrue, v.clone(), Value::Null), "{v}");
            assert!(op(BooleanIsFalse, v.clone(), Value::Null), "{v}");
        }
    }

    #[test]
    fn dates() {
        assert!(op(DateIsAfter, json!("2024-03-08"), json!("2024-03-07")));
        assert!(!op(DateIsAfter, json!("2024-03-07"), json!("2024-03-08")));
        assert!(op(
            DateIsBefore,
            json!("2024-03-07T10:00:00Z"),
            json!("2024-03-07T10:00:01Z")
        ));
        assert!(!op(
            DateIsBefore,
            json!("2024-03-07T10:00:01Z"),
            json!("2024-03-07T10:00:01Z")
        ));
        assert!(op(
            DateIsEqual,
            json!("2024-03-07T12:00:00+02:00"),
            json!("2024-03-07T10:00:00Z")
        ));
        assert!(op(
            DateIsEqual,
            json!("2024-03-07T10:00:00.000Z"),
            json!(1709805600000_i64)
        ));
        assert!(op(
            DateIsEqual,
            json!("2024-03-07 10:00"),
            json!("2024-03-07T10:00:00Z")
        ));
        assert!(op(DateIsEqual, json!("20240307"), json!("2024/3/7")));
        assert!(op(DateIsEqual, json!("2024-03"), json!("2024-03-01")));
        assert!(op(
            DateIsEqual,
            json!("Thu, 07 Mar 2024 10:00:00 GMT"),
            json!("2024-03-07T10:00:00Z")
        ));
        assert!(op(DateIsEqual, json!("3/7/2024"), json!("2024-03-07")));
        assert!(op(
            DateIsEqual,
            json!("2024-03-07T12:00:00+0200"),
            json!("2024-03-07T10:00:00Z")
        ));
        // dayjs quirks: overflow rolls over, ".5" is 5 ms.
        assert!(op(DateIsEqual, json!("2024-02-30"), json!("2024-03-01")));
        assert!(op(
            DateIsEqual,
            json!("2024-01-01 00:00:00.5"),
            json!(1704067200005_i64)
        ));
        assert!(op(
            DateIsEqual,
            json!("2024-01-01T00:00:00.5Z"),
            json!(1704067200500_i64)
        ));
        // Invalid or non-date values make every date operator false.
        for bad in [
            json!("not a date"),
            json!(""),
            json!(null),
            json!(true),
            json!({}),
            json!("2024-13-45T10:00:00Z"),
        ] {
            assert!(!op(DateIsAfter, bad.clone(), json!("2000-01-01")), "{bad}");
            assert!(!op(DateIsBefore, bad.clone(), json!("2100-01-01")), "{bad}");
            assert!(!op(DateIsEqual, bad.clone(), bad.clone()), "{bad}");
        }
        assert!(op(DateIsAfter, json!(1), json!(0)));
        assert!(!op(DateIsAfter, json!(9e15), json!(0)));
    }

    #[test]
    fn exists() {
        for v in [
            json!(0),
            json!(false),
            json!("x"),
            json!([]),
            json!({}),
            json!(" "),
        ] {
            assert!(op(Exists, v.clone(), Value::Null), "{v}");
            assert!(!op(DoesNotExist, v.clone(), Value::Null), "{v}");
        }
        for v in [json!(null), json!("")] {
            assert!(!op(Exists, v.clone(), Value::Null), "{v}");
            assert!(op(DoesNotExist, v.clone(), Value::Null), "{v}");
        }
    }

    #[test]
    fn js_number_formatting() {
        for (f, s) in [
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1.5e-10, "1.5e-10"),
            (-0.0, "0"),
        ] {
            assert_eq!(js_number_to_string(f), s);
        }
        assert_eq!(
            js_stringify(&json!({"a": [1.0, "x\n", null, true]})),
            r#"{"a":[1,"x\n",null,true]}"#
        );
    }

    #[test]
    fn conditions_render_templates() {
        let ctx = json!({"trigger": {"body": {"action": "Flow.Run.Finished", "count": 3, "tags": ["a", "b"]}}});
        let c = Condition {
            left: json!("{{trigger.body.action}}"),
            operator: TextExactlyMatches,
            right: Some(json!("flow.run.finished")),
            case_sensitive: false,
            time_zone: None,
        };
        let r = evaluate_condition(&c, &ctx);
        assert!(r.result);
        assert_eq!(r.left, json!("Flow.Run.Finished"));
        assert_eq!(r.right, Some(json!("flow.run.finished")));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"left": "Flow.Run.Finished", "operator": "TEXT_EXACTLY_MATCHES", "right": "flow.run.finished", "caseSensitive": false, "result": true})
        );
        let c = Condition {
            case_sensitive: true,
            ..c
        };
        assert!(!evaluate_condition(&c, &ctx).result);

        let gt = Condition {
            left: json!("{{trigger.body.count}}"),
            operator: NumberIsGreaterThan,
            right: Some(json!("2")),
            case_sensitive: false,
            time_zone: None,
        };
        assert!(evaluate_condition(&gt, &ctx).result);
        let missing = Condition {
            left: json!("{{trigger.body.nope}}"),
            operator: Exists,
            right: None,
            case_sensitive: false,
            time_zone: None,
        };
        let r = evaluate_condition(&missing, &ctx);
        assert!(!r.result);
        assert_eq!(r.left, json!(""));
        assert_eq!(r.right, None);
        let contains = Condition {
            left: json!("{{trigger.body.tags}}"),
            operator: ListContains,
            right: Some(json!("B")),
            case_sensitive: false,
            time_zone: None,
        };
        assert!(evaluate_condition(&contains, &ctx).result);
        // Missing right on a binary operator compares with "".
        let no_right = Condition {
            left: json!("abc"),
            operator: TextContains,
            right: None,
            case_sensitive: false,
            time_zone: None,
        };
        assert!(evaluate_condition(&no_right, &ctx).result);
    }

    #[test]
    fn calendar_conditions_read_the_date_in_their_zone() {
        let ctx = json!({"trigger": {"body": {"created": "2026-07-04T05:30:00Z"}}});
        let off_hours = Condition {
            left: json!("{{trigger.body.created}}"),
            operator: TimeOfDayIsNotBetween,
            right: Some(json!("08:00-18:00")),
            case_sensitive: false,
            time_zone: Some("America/New_York".into()),
        };
        // 05:30 UTC is 01:30 in New York (EDT): outside business hours; a Saturday there too.
        assert!(evaluate_condition(&off_hours, &ctx).result);
        let weekend = Condition {
            operator: DayOfWeekIs,
            right: Some(json!("Sat,Sun")),
            ..off_hours.clone()
        };
        assert!(evaluate_condition(&weekend, &ctx).result);
        let tokyo = Condition {
            time_zone: Some("Asia/Tokyo".into()),
            ..off_hours.clone()
        };
        // 14:30 in Tokyo: inside.
        assert!(!evaluate_condition(&tokyo, &ctx).result);
        // Without a zone the date is read in UTC (05:30: outside).
        let utc = Condition {
            time_zone: None,
            ..off_hours.clone()
        };
        assert!(evaluate_condition(&utc, &ctx).result);
        // Not a date: neither the operator nor its negation holds.
        let no_date = json!({"trigger": {"body": {}}});
        assert!(!evaluate_condition(&off_hours, &no_date).result);
        let inside = Condition {
            operator: TimeOfDayIsBetween,
            ..off_hours
        };
        assert!(!evaluate_condition(&inside, &no_date).result);
    }

    #[test]
    fn groups_are_or_of_ands_and_fully_traced() {
        let ctx = json!({"x": 1});
        let t = Condition {
            left: json!("{{x}}"),
            operator: Exists,
            right: None,
            case_sensitive: false,
            time_zone: None,
        };
        let f = Condition {
            left: json!("{{y}}"),
            operator: Exists,
            right: None,
            case_sensitive: false,
            time_zone: None,
        };
        let (ok, trace) = evaluate_groups(&[vec![f.clone(), t.clone()], vec![t.clone()]], &ctx);
        assert!(ok);
        assert_eq!(trace.len(), 2);
        assert_eq!(
            trace[0].iter().map(|r| r.result).collect::<Vec<_>>(),
            [false, true]
        );
        let (ok, trace) = evaluate_groups(&[vec![t.clone(), f.clone()], vec![f.clone()]], &ctx);
        assert!(!ok);
        assert_eq!(trace[1].len(), 1);
        assert!(!evaluate_groups(&[], &ctx).0);
        assert!(evaluate_groups(&[vec![]], &ctx).0);
    }
}
