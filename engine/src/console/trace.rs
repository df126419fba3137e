//! A run's trace: the path taken through the flow, every branch evaluation (left, operator,
//! right, result) and every step's input, output, logs and error; skipped side effects marked.
//! The same view serves test runs and stored runs.

use super::graph::operator_words;
use super::html::{badge, esc, json_block, t};
use serde_json::Value;
use std::fmt::Write;

/// The trace of a run (as `GET /v1/flow-runs/{id}` or a test run answers it).
pub fn render(run: &Value) -> String {
    let mut out = String::from("<section class=\"trace\" data-testid=\"trace\">");
    let _ = write!(
        out,
        "<p>{} <small>run <code>{}</code> · {} · attempt {} · {} ms</small></p>",
        badge(run["status"].as_str().unwrap_or("?")),
        t(&run["id"]),
        t(&run["environment"]),
        t(&run["attempt"]),
        run["durationMs"]
            .as_f64()
            .map_or("-".into(), |d| format!("{d:.1}")),
    );
    if let Some(error) = run["error"].as_str() {
        let _ = write!(out, "<p class=\"form-error\">{}</p>", esc(error));
    }
    let steps = run["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if steps.is_empty() {
        out.push_str("<p class=\"empty\">No step ran.</p>");
    }
    for step in steps {
        step_view(&mut out, step);
    }
    out.push_str("<details><summary>Trigger event</summary>");
    out.push_str(&json_block(&run["trigger"]));
    out.push_str("</details></section>");
    out
}

fn step_view(out: &mut String, step: &Value) {
    let status = step["status"].as_str().unwrap_or("?");
    let skipped = step["detail"]["skipped"].as_str();
    let _ = write!(
        out,
        "<article class=\"step step-{}\" data-step=\"{}\"><h3>{} {} <small>{} · {} attempt(s) · {:.1} ms</small></h3>",
        esc(&status.to_ascii_lowercase()),
        t(&step["name"]),
        badge(status),
        t(&step["name"]),
        t(&step["kind"]),
        t(&step["attempts"]),
        step["durationMs"].as_f64().unwrap_or_default(),
    );
    if let Some(reason) = skipped {
        let _ = write!(
            out,
            "<p class=\"skipped\" data-testid=\"skipped\">Skipped: {}</p>",
            esc(reason)
        );
    }
    if step["kind"] == "router" {
        branches(out, &step["detail"]["branches"]);
    } else {
        if step["kind"] == "threshold" && step["output"].is_object() {
            let o = &step["output"];
            let verdict = if o["crossed"] == true {
                "crossed: the steps below it ran"
            } else if o["suppressed"] == true {
                "over the threshold but quiet after an earlier alert"
            } else if o["duplicate"] == true {
                "a redelivered event, counted before"
            } else if o["late"] == true {
                "too late to count"
            } else {
                "not crossed"
            };
            let _ = write!(
                out,
                "<p data-testid=\"threshold\">Counted <b>{}</b> of {} in {} for key <code>{}</code> ({} → {}): {verdict}</p>",
                t(&o["count"]),
                t(&o["threshold"]),
                t(&step["detail"]["window"]),
                t(&o["key"]),
                t(&o["windowStart"]),
                t(&o["windowEnd"]),
            );
            if let Some(note) = step["detail"]["note"].as_str() {
                let _ = write!(out, "<p class=\"skipped\">{}</p>", esc(note));
            }
        }
        if let Some(plugin) = step["detail"]["plugin"].as_str() {
            let _ = write!(out, "<p>Plugin <code>{}</code></p>", esc(plugin));
        }
        for (label, key) in [("Input", "input"), ("Output", "output")] {
            if !step[key].is_null() {
                let _ = write!(out, "<details><summary>{label}</summary>");
                out.push_str(&json_block(&step[key]));
                out.push_str("</details>");
            }
        }
        if let Some(logs) = step["detail"]["logs"].as_array() {
            out.push_str("<details open><summary>Logs</summary><pre class=\"logs\">");
            for line in logs {
                let _ = writeln!(out, "{}", t(line));
            }
            out.push_str("</pre></details>");
        }
        for key in ["failedAttempts", "refusedRequests"] {
            if !step["detail"][key].is_null() {
                let _ = write!(out, "<details><summary>{key}</summary>");
                out.push_str(&json_block(&step["detail"][key]));
                out.push_str("</details>");
            }
        }
    }
    if let Some(error) = step["error"].as_str() {
        let _ = write!(out, "<p class=\"form-error\">{}</p>", esc(error));
    }
    out.push_str("</article>");
}

fn branches(out: &mut String, branches: &Value) {
    out.push_str("<table class=\"branches-eval\"><thead><tr><th>Branch</th><th>Conditions (left · operator · right → result)</th><th>Taken</th></tr></thead><tbody>");
    for branch in branches.as_array().into_iter().flatten() {
        let taken = branch["selected"] == true;
        let mut conditions = String::new();
        if branch["fallback"] == true {
            conditions.push_str("<i>fallback: taken when no other branch matched</i>");
        }
        for (g, group) in branch["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if g > 0 {
                conditions.push_str("<div class=\"or\">or</div>");
            }
            for c in group.as_array().into_iter().flatten() {
                let op = c["operator"].as_str().unwrap_or("?");
                let right = c
                    .get("right")
                    .map(|r| format!(" <code>{}</code>", esc(&r.to_string())))
                    .unwrap_or_default();
                let _ = write!(
                    conditions,
                    "<div class=\"cond cond-{}\"><code>{}</code> {}{right} → <b>{}</b></div>",
                    c["result"] == true,
                    esc(&c["left"].to_string()),
                    esc(operator_words(op)),
                    c["result"] == true,
                );
            }
        }
        let _ = write!(
            out,
            "<tr class=\"{}\" data-branch=\"{}\"><td>{}</td><td>{conditions}</td><td>{}</td></tr>",
            if taken { "taken" } else { "not-taken" },
            t(&branch["name"]),
            t(&branch["name"]),
            if taken { "✔ taken" } else { "—" }
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_branch_evaluations_and_skipped_side_effects() {
        let run = json!({"id": "r1", "status": "SUCCEEDED", "steps": [
            {"name": "route", "kind": "router", "status": "SUCCEEDED", "attempts": 1, "durationMs": 0.1,
             "detail": {"branches": [{"name": "Failed", "selected": true, "fallback": false,
                "conditions": [[{"left": "FAILED", "operator": "TEXT_EXACTLY_MATCHES", "right": "FAILED", "result": true}]]}]}},
            {"name": "notify", "kind": "action", "status": "SKIPPED", "attempts": 0, "durationMs": 0.0,
             "detail": {"plugin": "slack@0.1.0", "skipped": "side effect in test run"}}]});
        let html = render(&run);
        assert!(html.contains("data-branch=\"Failed\""));
        assert!(html.contains("✔ taken"));
        assert!(html.contains("Skipped: side effect in test run"));
    }

    #[test]
    fn threshold_steps_say_what_they_counted() {
        let run = json!({"id": "r1", "status": "SUCCEEDED", "steps": [
            {"name": "count", "kind": "threshold", "status": "SUCCEEDED", "attempts": 1, "durationMs": 0.1,
             "output": {"crossed": true, "count": 5, "threshold": 5, "key": "a|<b>",
                        "windowStart": "2026-03-02T09:00:00.000Z", "windowEnd": "2026-03-02T10:00:00.000Z"},
             "detail": {"window": "1h", "threshold": 5, "note": "test run: scratch"}}]});
        let html = render(&run);
        assert!(
            html.contains("Counted <b>5</b> of 5 in 1h for key <code>a|&lt;b&gt;</code>"),
            "{html}"
        );
        assert!(html.contains("crossed: the steps below it ran"));
        assert!(html.contains("test run: scratch"));
    }
}
