//! A flow drawn as a readable graph: trigger → steps, routers with their branches and each
//! branch's conditions in words, nested steps indented under their branch. Built from the stored
//! definition, so it shows exactly what runs; pure (no I/O), so it is cheap for big flows.

use super::html::esc;
use serde_json::Value;
use std::fmt::Write;

/// The operator in words, as a person reads a condition.
pub fn operator_words(operator: &str) -> &'static str {
    match operator {
        "TEXT_CONTAINS" => "contains",
        "TEXT_DOES_NOT_CONTAIN" => "does not contain",
        "TEXT_EXACTLY_MATCHES" => "is",
        "TEXT_DOES_NOT_EXACTLY_MATCH" => "is not",
        "TEXT_STARTS_WITH" => "starts with",
        "TEXT_DOES_NOT_START_WITH" => "does not start with",
        "TEXT_ENDS_WITH" => "ends with",
        "TEXT_DOES_NOT_END_WITH" => "does not end with",
        "LIST_CONTAINS" => "has the item",
        "LIST_DOES_NOT_CONTAIN" => "does not have the item",
        "LIST_IS_EMPTY" => "is an empty list",
        "LIST_IS_NOT_EMPTY" => "is a list with items",
        "NUMBER_IS_EQUAL_TO" => "equals",
        "NUMBER_IS_GREATER_THAN" => "is greater than",
        "NUMBER_IS_LESS_THAN" => "is less than",
        "DATE_IS_BEFORE" => "is before",
        "DATE_IS_EQUAL" => "is the same time as",
        "DATE_IS_AFTER" => "is after",
        "BOOLEAN_IS_TRUE" => "is true",
        "BOOLEAN_IS_FALSE" => "is false",
        "EXISTS" => "exists",
        "DOES_NOT_EXIST" => "does not exist",
        _ => "?",
    }
}

/// An operand as shown: a template's path without the braces, other values as JSON.
fn operand(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let trimmed = s.trim();
            if let Some(inner) = trimmed
                .strip_prefix("{{")
                .and_then(|r| r.strip_suffix("}}"))
                .filter(|inner| !inner.contains("{{"))
            {
                format!("<code>{}</code>", esc(inner.trim()))
            } else {
                format!("“{}”", esc(s))
            }
        }
        other => format!("<code>{}</code>", esc(&other.to_string())),
    }
}

/// One condition in words: "`trigger.body.action` is “flow.run.finished”".
pub fn condition_words(condition: &Value) -> String {
    let op = condition["operator"].as_str().unwrap_or("?");
    let mut words = format!(
        "{} {}",
        operand(&condition["left"]),
        esc(operator_words(op))
    );
    if let Some(right) = condition.get("right") {
        let _ = write!(words, " {}", operand(right));
    }
    if condition["caseSensitive"] == true {
        words.push_str(" <small>(case-sensitive)</small>");
    }
    words
}

/// The `when` of a branch in words: groups of AND'ed conditions, OR'ed.
pub fn when_words(when: &Value) -> String {
    let groups: Vec<String> = when
        .as_array()
        .into_iter()
        .flatten()
        .map(|group| {
            group
                .as_array()
                .into_iter()
                .flatten()
                .map(condition_words)
                .collect::<Vec<_>>()
                .join(" <b>and</b> ")
        })
        .collect();
    groups.join(" <b>or</b> ")
}

fn trigger_words(trigger: &Value) -> String {
    match trigger["type"].as_str() {
        Some("schedule") => format!(
            "Schedule <code>{}</code>",
            esc(trigger["cron"].as_str().unwrap_or(""))
        ),
        _ => {
            let auth = trigger["auth"]["type"].as_str().unwrap_or("none");
            format!("Webhook <small>(authentication: {})</small>", esc(auth))
        }
    }
}

/// The graph of a flow definition.
pub fn render(definition: &Value) -> String {
    let mut out = String::from("<div class=\"graph\" data-testid=\"flow-graph\">");
    let _ = write!(
        out,
        "<div class=\"node trigger\">⚡ {}</div>",
        trigger_words(&definition["trigger"])
    );
    steps(&mut out, &definition["steps"]);
    out.push_str("</div>");
    out
}

fn steps(out: &mut String, steps: &Value) {
    let list = steps.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        out.push_str("<p class=\"empty\">no steps</p>");
        return;
    }
    out.push_str("<ol class=\"steps\">");
    for step in list {
        out.push_str("<li>");
        let name = esc(step["name"].as_str().unwrap_or("?"));
        if step["type"] == "router" {
            let mode = if step["mode"] == "allMatch" {
                "every matching branch"
            } else {
                "first matching branch"
            };
            let _ = write!(
                out,
                "<div class=\"node router\">◆ <b>{name}</b> <small>router: {mode}</small></div><ul class=\"branches\">"
            );
            for branch in step["branches"].as_array().into_iter().flatten() {
                let label = esc(branch["name"].as_str().unwrap_or("?"));
                let condition = if branch["fallback"] == true {
                    "<i>otherwise (no other branch matched)</i>".to_string()
                } else {
                    format!("when {}", when_words(&branch["when"]))
                };
                let _ = write!(
                    out,
                    "<li class=\"branch\"><div class=\"node branch-head\"><b>{label}</b> <span class=\"when\">{condition}</span></div>"
                );
                self::steps(out, &branch["steps"]);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        } else if step["type"] == "threshold" {
            let distinct = match step["countDistinct"].as_str() {
                Some(t) => format!(" distinct <code>{}</code>", esc(t)),
                None => String::new(),
            };
            let quiet = step["suppressFor"]
                .as_str()
                .or(step["window"].as_str())
                .unwrap_or("?");
            let _ = write!(
                out,
                "<div class=\"node router\">▲ <b>{name}</b> <small>threshold: {threshold}{distinct} in {window} per <code>{key}</code>, then quiet for {quiet}</small></div><ul class=\"branches\"><li class=\"branch\"><div class=\"node branch-head\"><b>crossed</b> <span class=\"when\">when the count reaches {threshold}</span></div>",
                threshold = step["threshold"],
                window = esc(step["window"].as_str().unwrap_or("?")),
                key = esc(step["groupBy"].as_str().unwrap_or("?")),
                quiet = esc(quiet),
            );
            self::steps(out, &step["crossed"]);
            out.push_str("</li></ul>");
        } else {
            let plugin = esc(step["plugin"].as_str().unwrap_or("?"));
            let mut notes = Vec::new();
            if let Some(n) = step["retry"]["maxAttempts"].as_u64() {
                notes.push(format!("up to {n} attempts"));
            }
            if step["continueOnFailure"] == true {
                notes.push("continues on failure".into());
            }
            if let Some(hosts) = step["allowedHosts"].as_array() {
                notes.push(format!("may call {} host(s)", hosts.len()));
            }
            if let Some(secrets) = step["secrets"].as_array() {
                let names: Vec<String> =
                    secrets.iter().filter_map(Value::as_str).map(esc).collect();
                notes.push(format!("secrets: {}", names.join(", ")));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" <small>{}</small>", notes.join(" · "))
            };
            let _ = write!(
                out,
                "<div class=\"node action\">▸ <b>{name}</b> <code>{plugin}</code>{notes}</div>"
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ol>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_read_as_words_and_escape_their_values() {
        let c = json!({"left": "{{trigger.body.action}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "<b>x</b>"});
        assert_eq!(
            condition_words(&c),
            "<code>trigger.body.action</code> is “&lt;b&gt;x&lt;/b&gt;”"
        );
        let flow = json!({"trigger": {"type": "webhook"}, "steps": [
            {"name": "route", "type": "router", "branches": [
                {"name": "Failed", "when": [[c], [{"left": "{{a}}", "operator": "EXISTS"}]],
                 "steps": [{"name": "note", "type": "action", "plugin": "log@0.1.0"}]},
                {"name": "Otherwise", "fallback": true, "steps": []}]}]});
        let html = render(&flow);
        assert!(html.contains("<b>or</b>"));
        assert!(html.contains("otherwise"));
        assert!(html.contains("log@0.1.0"));
        assert!(!html.contains("<b>x</b>"));
    }

    #[test]
    fn threshold_steps_show_their_rule_and_crossed_steps() {
        let flow = json!({"trigger": {"type": "webhook"}, "steps": [
            {"name": "count", "type": "threshold", "groupBy": "{{trigger.body.ip}}", "window": "10m",
             "threshold": 11, "countDistinct": "<x>",
             "crossed": [{"name": "alert", "type": "action", "plugin": "slack@0.1.0"}]}]});
        let html = render(&flow);
        assert!(html.contains("threshold: 11"), "{html}");
        assert!(html.contains("in 10m per <code>{{trigger.body.ip}}</code>, then quiet for 10m"));
        assert!(html.contains("distinct <code>&lt;x&gt;</code>"));
        assert!(html.contains("slack@0.1.0"));
    }
}
