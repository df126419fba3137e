//! Renders a run as a readable tree: the flow's structure with each executed step's status,
//! the branch each router took, and step outputs and errors.

use crate::exec::RunResult;
use crate::flow::{Flow, Step};
use crate::store::{StepRecord, StepStatus};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;

/// Colour only when writing to a terminal and `NO_COLOR` is unset.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

struct Painter(bool);

impl Painter {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn status(&self, status: StepStatus) -> String {
        let code = match status {
            StepStatus::Succeeded => "32",
            StepStatus::Skipped => "33",
            StepStatus::Failed | StepStatus::Timeout => "31",
        };
        self.paint(code, status.as_str())
    }
}

/// The whole trace as text.
pub fn render(flow: &Flow, result: &RunResult, color: bool) -> String {
    let p = Painter(color);
    let records: HashMap<&str, &StepRecord> =
        result.steps.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out = String::new();
    let status = result.status.as_str();
    let status = if result.status == crate::store::RunStatus::Succeeded {
        p.paint("32", status)
    } else {
        p.paint("31", status)
    };
    let _ = writeln!(
        out,
        "run {status} in {:.3} ms — flow {:?}",
        result.duration_ms, flow.name
    );
    if let Some(error) = &result.error {
        let _ = writeln!(out, "  {}", p.paint("31", error));
    }
    steps(&mut out, &p, &flow.steps, &records, "");
    out
}

fn steps(
    out: &mut String,
    p: &Painter,
    list: &[Step],
    records: &HashMap<&str, &StepRecord>,
    indent: &str,
) {
    for step in list {
        let Some(record) = records.get(step.name()) else {
            let _ = writeln!(out, "{indent}· {} (not run)", step.name());
            continue;
        };
        match step {
            Step::Router(router) => {
                let _ = writeln!(
                    out,
                    "{indent}◆ {} router {} ({:.3} ms)",
                    router.name,
                    p.status(record.status),
                    record.duration_ms
                );
                let evaluations = record
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("branches"))
                    .and_then(|b| b.as_array());
                for (i, branch) in router.branches.iter().enumerate() {
                    let eval = evaluations.and_then(|e| e.get(i));
                    let selected = eval
                        .and_then(|e| e.get("selected"))
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    let mark = if selected {
                        p.paint("32", "▶ taken")
                    } else {
                        p.paint("2", "  not taken")
                    };
                    let kind = if branch.fallback { " (fallback)" } else { "" };
                    let _ = writeln!(out, "{indent}  {mark} {:?}{kind}", branch.name);
                    if let Some(groups) = eval
                        .and_then(|e| e.get("conditions"))
                        .and_then(|c| c.as_array())
                    {
                        for condition in groups.iter().filter_map(|g| g.as_array()).flatten() {
                            let left = condition
                                .get("left")
                                .map(|v| v.to_string())
                                .unwrap_or_default();
                            let op = condition
                                .get("operator")
                                .and_then(|v| v.as_str())
                                .unwrap_or("?");
                            let right = condition
                                .get("right")
                                .map(|v| format!(" {v}"))
                                .unwrap_or_default();
                            let ok = condition
                                .get("result")
                                .and_then(|v| v.as_bool())
                                .unwrap_or(false);
                            let _ = writeln!(out, "{indent}      {left} {op}{right} → {ok}");
                        }
                    }
                    if selected {
                        steps(out, p, &branch.steps, records, &format!("{indent}    "));
                    }
                }
            }
            Step::Threshold(threshold) => {
                let output = record.output.as_ref();
                let field = |name: &str| output.and_then(|o| o.get(name)).cloned();
                let count = field("count").unwrap_or_default();
                let crossed = field("crossed").and_then(|v| v.as_bool()) == Some(true);
                let _ = writeln!(
                    out,
                    "{indent}▲ {} threshold {} ({:.3} ms): {count}/{} in {} for {}",
                    threshold.name,
                    p.status(record.status),
                    record.duration_ms,
                    threshold.threshold,
                    threshold.window,
                    field("key").unwrap_or_default()
                );
                if let Some(error) = &record.error {
                    let _ = writeln!(out, "{indent}    error: {}", p.paint("31", error));
                }
                for flag in ["suppressed", "duplicate", "late"] {
                    if field(flag).and_then(|v| v.as_bool()) == Some(true) {
                        let _ = writeln!(out, "{indent}    {flag}");
                    }
                }
                if crossed {
                    let _ = writeln!(out, "{indent}  {} crossed", p.paint("32", "▶"));
                    steps(
                        out,
                        p,
                        &threshold.crossed,
                        records,
                        &format!("{indent}    "),
                    );
                } else {
                    let _ = writeln!(out, "{indent}  {}", p.paint("2", "  not crossed"));
                }
            }
            Step::Action(action) => {
                let _ = writeln!(
                    out,
                    "{indent}● {} {} {} ({:.3} ms, {} attempt{})",
                    action.name,
                    action.plugin,
                    p.status(record.status),
                    record.duration_ms,
                    record.attempts,
                    if record.attempts == 1 { "" } else { "s" }
                );
                if let Some(output) = &record.output {
                    let _ = writeln!(out, "{indent}    output: {output}");
                }
                if let Some(error) = &record.error {
                    let _ = writeln!(out, "{indent}    error: {}", p.paint("31", error));
                }
                if let Some(logs) = record
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("logs"))
                    .and_then(|l| l.as_array())
                {
                    for line in logs {
                        let level = line.get("level").and_then(|v| v.as_str()).unwrap_or("info");
                        let message = line.get("message").and_then(|v| v.as_str()).unwrap_or("");
                        let _ = writeln!(out, "{indent}    log [{level}] {message}");
                    }
                }
                if let Some(reason) = record
                    .detail
                    .as_ref()
                    .and_then(|d| d.get("skipped"))
                    .and_then(|v| v.as_str())
                {
                    let _ = writeln!(out, "{indent}    skipped: {reason}");
                }
            }
        }
    }
}
