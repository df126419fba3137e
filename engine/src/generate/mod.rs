//! The handler-flow generator: pick event types, get a ready flow — webhook trigger, a
//! first-match router with one branch per event (case-insensitive exact match on the event
//! name), a nested "Failed run" router under Activepieces' `flow.run.finished`, an "Otherwise"
//! fallback, a `log` step in every branch as a starting point, and the sample of every selected
//! event in `sampleData` so a test run works at once.

use crate::catalog::{Catalog, EventType, Source};
use serde_json::{Map, Value, json};

/// Ready-made handler flows in `templates/handlers/`: name, YAML, and the events whose samples
/// the generated flow carries for test runs.
pub const TEMPLATES: &[(&str, &str, &[&str])] = &[
    (
        "failed-runs-to-slack",
        include_str!("../../../templates/handlers/failed-runs-to-slack.yaml"),
        &["flow.run.finished"],
    ),
    (
        "admin-role-changes-to-teams",
        include_str!("../../../templates/handlers/admin-role-changes-to-teams.yaml"),
        &["project.role.created", "project.role.updated"],
    ),
    (
        "new-ip-sign-in-to-email",
        include_str!("../../../templates/handlers/new-ip-sign-in-to-email.yaml"),
        &["user.signed.in"],
    ),
    (
        "auth0-action-forwarder",
        include_str!("../../../templates/handlers/auth0-action-forwarder.yaml"),
        &["user.created", "user.updated", "user.deleted"],
    ),
    (
        "everything-to-splunk",
        include_str!("../../../templates/handlers/everything-to-splunk.yaml"),
        &[
            "flow.run.finished",
            "user.signed.in",
            "project.role.updated",
        ],
    ),
];

/// The flow of a named template, with catalog samples for its events.
pub fn from_template(catalog: &Catalog, name: &str) -> Result<Value, GenerateError> {
    let (_, yaml, events) = TEMPLATES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| {
            GenerateError::UnknownTemplate(
                name.to_string(),
                TEMPLATES
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
    let mut flow: Value = serde_yaml::from_str(yaml).expect("templates/handlers/*.yaml parse");
    let samples: Map<String, Value> = events
        .iter()
        .filter_map(|e| catalog.find_any(e))
        .map(|(_, e)| (e.name.clone(), e.sample.clone()))
        .collect();
    flow["sampleData"] = Value::Object(samples);
    Ok(flow)
}

/// Run statuses Activepieces reports for a run that did not succeed.
pub const FAILED_RUN_STATUSES: &[&str] = &[
    "FAILED",
    "TIMEOUT",
    "INTERNAL_ERROR",
    "QUOTA_EXCEEDED",
    "MEMORY_LIMIT_EXCEEDED",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Request {
    pub source: String,
    pub events: Vec<String>,
    /// Flow name; a descriptive default when `None`.
    pub name: Option<String>,
}

/// Why nothing was generated. Rendered to users, so every variant names the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    #[error("unknown source {0:?} (known: {1})")]
    UnknownSource(String, String),
    #[error("no events selected: pass at least one event type")]
    NoEvents,
    #[error("unknown template {0:?} (known: {1})")]
    UnknownTemplate(String, String),
    #[error("{}", describe_unknown(.0))]
    UnknownEvents(Vec<UnknownEvent>),
}

/// An event name the catalog does not have, with the closest known names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownEvent {
    pub name: String,
    pub close_matches: Vec<String>,
}

fn describe_unknown(unknown: &[UnknownEvent]) -> String {
    let parts: Vec<String> = unknown
        .iter()
        .map(|u| {
            if u.close_matches.is_empty() {
                format!("unknown event {:?}", u.name)
            } else {
                format!(
                    "unknown event {:?} (did you mean {}?)",
                    u.name,
                    u.close_matches.join(", ")
                )
            }
        })
        .collect();
    parts.join("; ")
}

/// Builds the flow definition (JSON) for `request`.
pub fn generate(catalog: &Catalog, request: &Request) -> Result<Value, GenerateError> {
    let source = catalog.source(&request.source).ok_or_else(|| {
        GenerateError::UnknownSource(request.source.clone(), catalog.source_names().join(", "))
    })?;
    let mut selected: Vec<&EventType> = Vec::new();
    let mut unknown = Vec::new();
    for name in request
        .events
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        match source.find(name) {
            Some(event) if !selected.iter().any(|s| s.name == event.name) => selected.push(event),
            Some(_) => {}
            None => unknown.push(UnknownEvent {
                name: name.to_string(),
                close_matches: source.close_matches(name),
            }),
        }
    }
    if !unknown.is_empty() {
        return Err(GenerateError::UnknownEvents(unknown));
    }
    if selected.is_empty() {
        return Err(GenerateError::NoEvents);
    }
    let event_name = format!("{{{{trigger.body.{}}}}}", source.event_name_path);
    let mut branches: Vec<Value> = selected
        .iter()
        .map(|event| event_branch(source, event, &event_name))
        .collect();
    branches.push(json!({
        "name": "Otherwise",
        "fallback": true,
        "steps": [log_step("log-other-event", &format!("Unhandled {} event {event_name}", source.display_name))],
    }));
    let sample_data: Map<String, Value> = selected
        .iter()
        .map(|e| (e.name.clone(), e.sample.clone()))
        .collect();
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| match selected.as_slice() {
            [one] => format!("Handle {} {}", source.display_name, one.name),
            many => format!("Handle {} {} events", many.len(), source.display_name),
        });
    Ok(json!({
        "name": name,
        "description": format!("Generated for {} events: {}", source.display_name, selected.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")),
        "trigger": {"type": "webhook"},
        "sampleData": sample_data,
        "steps": [{
            "name": "route-event",
            "type": "router",
            "mode": "firstMatch",
            "branches": branches,
        }],
    }))
}

fn event_branch(source: &Source, event: &EventType, event_name: &str) -> Value {
    let slug = slug(&event.name);
    let steps = if source.source == "activepieces" && event.name == "flow.run.finished" {
        failed_run_router()
    } else {
        vec![log_step(
            &format!("log-{slug}"),
            &body_template(&event.summary),
        )]
    };
    json!({
        "name": event.name,
        "when": [[{"left": event_name, "operator": "TEXT_EXACTLY_MATCHES", "right": event.name}]],
        "steps": steps,
    })
}

fn failed_run_router() -> Vec<Value> {
    let status = "{{trigger.body.data.flowRun.status}}";
    let groups: Vec<Value> = FAILED_RUN_STATUSES
        .iter()
        .map(|s| json!([{"left": status, "operator": "TEXT_EXACTLY_MATCHES", "right": s}]))
        .collect();
    let run = "{{trigger.body.data.flowRun.id}}";
    let flow = "{{trigger.body.data.flowRun.flowDisplayName}}";
    vec![json!({
        "name": "route-run-status",
        "type": "router",
        "mode": "firstMatch",
        "branches": [
            {"name": "Failed run", "when": groups, "steps": [log_step("log-failed-run", &format!("Flow run {run} of {flow} failed with status {status}"))]},
            {"name": "Otherwise", "fallback": true, "steps": [log_step("log-finished-run", &format!("Flow run {run} of {flow} finished with status {status}"))]},
        ],
    })]
}

fn log_step(name: &str, message: &str) -> Value {
    json!({"name": name, "type": "action", "plugin": "log@0.1.0", "input": {"message": message}})
}

/// `flow.run.finished` → `flow-run-finished`, a valid step name.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.chars().take(56).collect()
}

/// Rewrites a catalog summary (paths relative to the event body) into a flow template
/// (paths under `trigger.body`).
fn body_template(summary: &str) -> String {
    let mut out = String::with_capacity(summary.len() + 32);
    let mut rest = summary;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start + 2]);
        rest = &rest[start + 2..];
        let trimmed = rest.trim_start();
        out.push_str(if trimmed.starts_with('[') {
            "trigger.body"
        } else {
            "trigger.body."
        });
        rest = trimmed;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{self, Format};

    fn all_events(source: &str) -> Request {
        let events = Catalog::builtin()
            .source(source)
            .unwrap()
            .events
            .iter()
            .map(|e| e.name.clone())
            .collect();
        Request {
            source: source.into(),
            events,
            name: None,
        }
    }

    #[test]
    fn generated_flows_validate_and_round_trip_through_yaml() {
        for source in ["activepieces", "gitlab", "auth0"] {
            let definition = generate(Catalog::builtin(), &all_events(source)).unwrap();
            let parsed = flow::flow_from_value(definition.clone())
                .unwrap_or_else(|p| panic!("{source}: {p}"));
            let yaml = serde_yaml::to_string(&parsed.to_value()).unwrap();
            let again = flow::parse_flow(&yaml, Format::Yaml).unwrap();
            assert_eq!(again, parsed, "{source} round-trips");
            assert_eq!(serde_yaml::to_string(&again.to_value()).unwrap(), yaml);
        }
    }

    #[test]
    fn unknown_events_are_refused_with_close_matches() {
        let request = Request {
            source: "activepieces".into(),
            events: vec!["flow.run.finishd".into(), "nope".into()],
            name: None,
        };
        let error = generate(Catalog::builtin(), &request).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("unknown event \"flow.run.finishd\" (did you mean flow.run.finished"),
            "{text}"
        );
        assert!(text.contains("unknown event \"nope\""), "{text}");
        let request = Request {
            source: "jira".into(),
            events: vec!["x".into()],
            name: None,
        };
        assert!(
            generate(Catalog::builtin(), &request)
                .unwrap_err()
                .to_string()
                .contains("known: activepieces, gitlab, auth0")
        );
    }

    #[test]
    fn every_template_is_a_valid_flow_with_samples() {
        for (name, _, events) in TEMPLATES {
            let definition = from_template(Catalog::builtin(), name).unwrap();
            let flow = flow::flow_from_value(definition).unwrap_or_else(|p| panic!("{name}: {p}"));
            assert_eq!(
                flow.sample_data.as_ref().map(|s| s.len()),
                Some(events.len()),
                "{name}"
            );
        }
        assert!(
            from_template(Catalog::builtin(), "nope")
                .unwrap_err()
                .to_string()
                .contains("failed-runs-to-slack")
        );
    }

    #[test]
    fn summaries_become_trigger_templates() {
        assert_eq!(
            body_template("Run {{data.id}} by {{ userEmail }} {{[\"a\"]}}"),
            "Run {{trigger.body.data.id}} by {{trigger.body.userEmail }} {{trigger.body[\"a\"]}}"
        );
        assert_eq!(slug("flow.run.finished"), "flow-run-finished");
    }
}
