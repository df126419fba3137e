//! The handler-flow generator: pick event types, get a ready flow — webhook trigger, a
//! first-match router with one branch per event (case-insensitive exact match on the event
//! name), a nested "Failed run" router under Activepieces' `flow.run.finished`, an "Otherwise"
//! fallback, a `log` step in every branch as a starting point, and the sample of every selected
//! event in `sampleData` so a test run works at once.
//!
//! A name the catalog does not know still gets its branch, matched at the source's name path
//! like any other: products add event types faster than a catalog follows, and a handler for
//! tomorrow's type is better than a refusal. Such a branch has no sample (there is nothing to
//! copy), its log step and the flow's description say "not in the catalog: no sample", and the
//! answer ([`Generated::unknown`]) names every such event with the closest known names, so a
//! typo is still easy to spot.

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
        "brute-force-sign-ins",
        include_str!("../../../templates/handlers/brute-force-sign-ins.yaml"),
        &["user.signed.in"],
    ),
    (
        "bulk-deletions",
        include_str!("../../../templates/handlers/bulk-deletions.yaml"),
        &["flow.deleted", "connection.deleted"],
    ),
    (
        "off-hours-activity",
        include_str!("../../../templates/handlers/off-hours-activity.yaml"),
        &["flow.updated", "flow.deleted", "connection.deleted"],
    ),
    (
        "admin-role-granted",
        include_str!("../../../templates/handlers/admin-role-granted.yaml"),
        &["project.role.updated", "project.role.created"],
    ),
    (
        "gitlab-mass-downloads",
        include_str!("../../../templates/handlers/gitlab-mass-downloads.yaml"),
        &["repository_git_operation"],
    ),
    (
        "auth0-failed-logins",
        include_str!("../../../templates/handlers/auth0-failed-logins.yaml"),
        &["f", "fp", "fu"],
    ),
    (
        "auth0-user-deletion-burst",
        include_str!("../../../templates/handlers/auth0-user-deletion-burst.yaml"),
        &["user.deleted"],
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
    let mut flow: Value = crate::yaml::from_str(yaml).expect("templates/handlers/*.yaml parse");
    let samples: Map<String, Value> = events
        .iter()
        .filter_map(|e| catalog.find_any(e))
        .map(|(_, e)| (e.name.clone(), e.sample.clone()))
        .collect();
    flow["sampleData"] = Value::Object(samples);
    Ok(flow)
}

/// How a generated flow's webhook makes its callers authenticate. A generated flow goes live
/// the moment it is saved, so it gets a fresh credential unless `None` is asked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AuthChoice {
    /// A token in a header: GitLab's `X-Gitlab-Event-Streaming-Token` for `gitlab`,
    /// `X-Hookflow-Token` otherwise.
    Header,
    /// `Authorization: Bearer <token>` (what Auth0 streams send as their authorization value).
    Bearer,
    /// Standard Webhooks signatures with a `whsec_` secret (Activepieces signs this way).
    StandardWebhooks,
    /// No authentication: anyone who learns the URL may post events. Only when asked for.
    None,
}

impl AuthChoice {
    /// What the source's sender can be set up to send; a header token for templates and
    /// unknown sources.
    pub fn default_for(source: Option<&str>) -> AuthChoice {
        match source {
            Some("activepieces") => AuthChoice::StandardWebhooks,
            Some("auth0") | Some("auth0-logs") => AuthChoice::Bearer,
            _ => AuthChoice::Header,
        }
    }
}

/// The header a `header` credential is read from for `source`.
pub fn credential_header(source: Option<&str>) -> &'static str {
    match source {
        Some("gitlab") => "X-Gitlab-Event-Streaming-Token",
        _ => "X-Hookflow-Token",
    }
}

/// Gives a generated flow's webhook a fresh credential: sets `trigger.auth` and returns the
/// credential as the sender needs it (`{type, header?, value | token | secret}`), to be shown
/// once. `None` for [`AuthChoice::None`] (the trigger is left without authentication).
pub fn add_credential(flow: &mut Value, choice: AuthChoice, source: Option<&str>) -> Option<Value> {
    let random = rand::random::<[u8; 32]>();
    let auth = match choice {
        AuthChoice::None => return None,
        AuthChoice::Header => json!({
            "type": "header",
            "header": credential_header(source),
            "value": format!("hft_{}", base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random)),
        }),
        AuthChoice::Bearer => json!({
            "type": "bearer",
            "token": format!("hft_{}", base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random)),
        }),
        AuthChoice::StandardWebhooks => json!({
            "type": "standardWebhooks",
            "secret": format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, random)),
        }),
    };
    // Only a webhook is called from outside; a scheduled flow has nothing to authenticate.
    if flow["trigger"]["type"] != "webhook" {
        return None;
    }
    flow["trigger"]["auth"] = auth.clone();
    Some(auth)
}

/// The source of a template's events (the first one the catalog knows), so its credential
/// is the kind that source sends.
pub fn template_source<'c>(catalog: &'c Catalog, name: &str) -> Option<&'c str> {
    let (_, _, events) = TEMPLATES.iter().find(|(n, _, _)| *n == name)?;
    events
        .iter()
        .find_map(|e| catalog.find_any(e))
        .map(|(source, _)| source.source.as_str())
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
    #[error(
        "event name {0:?} is not usable: give at most {MAX_EVENT_NAME_CHARS} characters, without control characters or template braces"
    )]
    BadEventName(String),
}

/// The longest event name the generator takes: the name becomes a branch name, and real ones
/// are shorter (GitLab's documented types reach 64 characters).
pub const MAX_EVENT_NAME_CHARS: usize = 128;

/// An event name the catalog does not have, with the closest known names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownEvent {
    pub name: String,
    pub close_matches: Vec<String>,
}

/// A generated flow definition and the selected names it has no catalog entry (and so no
/// sample) for.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub flow: Value,
    pub unknown: Vec<UnknownEvent>,
}

impl Generated {
    /// One line naming the events the catalog did not know, with close matches; `None` when
    /// every event was known.
    pub fn unknown_note(&self) -> Option<String> {
        if self.unknown.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .unknown
            .iter()
            .map(|u| {
                if u.close_matches.is_empty() {
                    format!("{:?}", u.name)
                } else {
                    format!(
                        "{:?} (did you mean {}?)",
                        u.name,
                        u.close_matches.join(", ")
                    )
                }
            })
            .collect();
        Some(format!(
            "not in the catalog, so their branches have no sample: {}",
            parts.join("; ")
        ))
    }
}

/// What the flow has a branch for: a catalog event, or a name the catalog does not know.
enum Selected<'a> {
    Known(&'a EventType),
    Unknown(String),
}

impl Selected<'_> {
    fn name(&self) -> &str {
        match self {
            Selected::Known(event) => &event.name,
            Selected::Unknown(name) => name,
        }
    }
}

/// Builds the flow definition (JSON) for `request`.
pub fn generate(catalog: &Catalog, request: &Request) -> Result<Generated, GenerateError> {
    let source = catalog.source(&request.source).ok_or_else(|| {
        GenerateError::UnknownSource(request.source.clone(), catalog.source_names().join(", "))
    })?;
    let mut selected: Vec<Selected> = Vec::new();
    let mut unknown = Vec::new();
    for name in request
        .events
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        // The name becomes a condition operand, where `{{` would start a template.
        if name.chars().count() > MAX_EVENT_NAME_CHARS
            || name.chars().any(char::is_control)
            || name.contains("{{")
            || name.contains("}}")
        {
            return Err(GenerateError::BadEventName(name.to_string()));
        }
        // Names match case-insensitively at intake, so two spellings are one branch.
        if selected.iter().any(|s| s.name().eq_ignore_ascii_case(name)) {
            continue;
        }
        match source.find(name) {
            Some(event) => selected.push(Selected::Known(event)),
            None => {
                unknown.push(UnknownEvent {
                    name: name.to_string(),
                    close_matches: source.close_matches(name),
                });
                selected.push(Selected::Unknown(name.to_string()));
            }
        }
    }
    if selected.is_empty() {
        return Err(GenerateError::NoEvents);
    }
    let event_name = format!("{{{{trigger.body.{}}}}}", source.event_name_path);
    let mut step_names = StepNames::default();
    let mut branches: Vec<Value> = selected
        .iter()
        .map(|event| event_branch(source, event, &event_name, &mut step_names))
        .collect();
    branches.push(json!({
        "name": "Otherwise",
        "fallback": true,
        "steps": [log_step(&step_names.take("log-other-event"), &format!("Unhandled {} event {event_name}", source.display_name))],
    }));
    let sample_data: Map<String, Value> = selected
        .iter()
        .filter_map(|s| match s {
            Selected::Known(e) => Some((e.name.clone(), e.sample.clone())),
            Selected::Unknown(_) => None,
        })
        .collect();
    let name = request
        .name
        .clone()
        .unwrap_or_else(|| match selected.as_slice() {
            [one] => format!("Handle {} {}", source.display_name, one.name()),
            many => format!("Handle {} {} events", many.len(), source.display_name),
        });
    let names = |known: bool| -> Vec<&str> {
        selected
            .iter()
            .filter(|s| matches!(s, Selected::Known(_)) == known)
            .map(Selected::name)
            .collect()
    };
    let mut description = format!("Generated for {} events", source.display_name);
    if !names(true).is_empty() {
        description.push_str(&format!(": {}", names(true).join(", ")));
    }
    if !unknown.is_empty() {
        description.push_str(&format!(
            "; not in the catalog: no sample: {}",
            names(false).join(", ")
        ));
    }
    let flow = json!({
        "name": name,
        "description": description,
        "trigger": {"type": "webhook"},
        "sampleData": sample_data,
        "steps": [{
            "name": "route-event",
            "type": "router",
            "mode": "firstMatch",
            "branches": branches,
        }],
    });
    Ok(Generated { flow, unknown })
}

fn event_branch(
    source: &Source,
    event: &Selected,
    event_name: &str,
    step_names: &mut StepNames,
) -> Value {
    let name = event.name();
    let step = step_names.take(&format!("log-{}", slug(name)));
    let steps = match event {
        Selected::Known(e) if source.source == "activepieces" && e.name == "flow.run.finished" => {
            failed_run_router(step_names)
        }
        Selected::Known(e) => vec![log_step(&step, &body_template(&e.summary))],
        Selected::Unknown(_) => vec![log_step(
            &step,
            &format!(
                "{} event {event_name} (not in the catalog: no sample)",
                source.display_name
            ),
        )],
    };
    json!({
        "name": name,
        "when": [[{"left": event_name, "operator": "TEXT_EXACTLY_MATCHES", "right": name}]],
        "steps": steps,
    })
}

/// Step names handed out so far: a flow's step names must be unique, and two event names can
/// share a slug (`user.created` and `user_created`).
#[derive(Default)]
struct StepNames(std::collections::HashSet<String>);

impl StepNames {
    /// `wanted`, or `wanted-2`, `wanted-3`, … if taken.
    fn take(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut n = 1;
        while !self.0.insert(name.clone()) {
            n += 1;
            name = format!("{wanted}-{n}");
        }
        name
    }
}

fn failed_run_router(step_names: &mut StepNames) -> Vec<Value> {
    let status = "{{trigger.body.data.flowRun.status}}";
    let groups: Vec<Value> = FAILED_RUN_STATUSES
        .iter()
        .map(|s| json!([{"left": status, "operator": "TEXT_EXACTLY_MATCHES", "right": s}]))
        .collect();
    let run = "{{trigger.body.data.flowRun.id}}";
    let flow = "{{trigger.body.data.flowRun.flowDisplayName}}";
    let (router, failed, finished) = (
        step_names.take("route-run-status"),
        step_names.take("log-failed-run"),
        step_names.take("log-finished-run"),
    );
    vec![json!({
        "name": router,
        "type": "router",
        "mode": "firstMatch",
        "branches": [
            {"name": "Failed run", "when": groups, "steps": [log_step(&failed, &format!("Flow run {run} of {flow} failed with status {status}"))]},
            {"name": "Otherwise", "fallback": true, "steps": [log_step(&finished, &format!("Flow run {run} of {flow} finished with status {status}"))]},
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
    // "log-" + 52 + a "-NNNN" suffix from `StepNames` stays within the 64 a step name may have.
    s.chars().take(52).collect()
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

    /// The branch the generated flow's top router takes for `body`.
    fn branch_for(flow: &flow::Flow, body: &Value) -> String {
        let Some(flow::Step::Router(router)) = flow.steps.first() else {
            panic!("the first step is the router");
        };
        let decision = flow::decide(router, &json!({ "trigger": { "body": body } }));
        router.branches[decision.selected[0]].name.clone()
    }

    #[test]
    fn generated_flows_validate_round_trip_and_route_every_sample_to_its_branch() {
        let catalog = Catalog::builtin();
        for source in &catalog.sources {
            let generated = generate(catalog, &all_events(&source.source)).unwrap();
            assert!(generated.unknown.is_empty());
            let parsed = flow::flow_from_value(generated.flow.clone())
                .unwrap_or_else(|p| panic!("{}: {p}", source.source));
            let yaml = crate::yaml::to_string(&parsed.to_value()).unwrap();
            let again = flow::parse_flow(&yaml, Format::Yaml).unwrap();
            assert_eq!(again, parsed, "{} round-trips", source.source);
            assert_eq!(crate::yaml::to_string(&again.to_value()).unwrap(), yaml);
            for event in &source.events {
                assert_eq!(branch_for(&parsed, &event.sample), event.name);
            }
        }
    }

    #[test]
    fn unknown_events_get_their_own_branch_without_a_sample() {
        let request = Request {
            source: "gitlab".into(),
            events: vec![
                "user_created".into(),
                "user_creatd".into(),
                "duo_workflow_started".into(),
                "USER_CREATD".into(),
                "user.created".into(),
            ],
            name: None,
        };
        let generated = generate(Catalog::builtin(), &request).unwrap();
        let unknown: Vec<&str> = generated.unknown.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            unknown,
            ["user_creatd", "duo_workflow_started", "user.created"]
        );
        assert_eq!(generated.unknown[0].close_matches[0], "user_created");
        let note = generated.unknown_note().unwrap();
        assert!(
            note.contains("\"user_creatd\" (did you mean user_created"),
            "{note}"
        );
        assert!(note.contains("\"duo_workflow_started\""), "{note}");
        let flow = flow::flow_from_value(generated.flow.clone()).unwrap();
        // Only the known event has a sample.
        let samples = flow.sample_data.as_ref().unwrap();
        assert_eq!(samples.keys().collect::<Vec<_>>(), ["user_created"]);
        let description = flow.description.as_deref().unwrap();
        assert!(
            description.contains(
                "not in the catalog: no sample: user_creatd, duo_workflow_started, user.created"
            ),
            "{description}"
        );
        // Each unknown name is routed like a known one; `user.created` and `user_created`
        // share a slug, so their log steps get distinct names.
        for name in ["duo_workflow_started", "USER_CREATD", "user.created"] {
            let body = json!({"event_type": name});
            assert_eq!(branch_for(&flow, &body).to_lowercase(), name.to_lowercase());
        }
        assert_eq!(
            branch_for(&flow, &json!({"event_type": "other"})),
            "Otherwise"
        );
        let names: Vec<&str> = flow.all_steps().map(|s| s.name()).collect();
        assert!(names.contains(&"log-user-created"), "{names:?}");
        assert!(names.contains(&"log-user-created-2"), "{names:?}");
        let yaml = crate::yaml::to_string(&flow.to_value()).unwrap();
        assert!(yaml.contains("(not in the catalog: no sample)"), "{yaml}");

        // Every name unknown is still a flow; no names at all is not.
        let only_unknown = Request {
            source: "auth0-logs".into(),
            events: vec!["brand_new_code".into()],
            name: None,
        };
        let generated = generate(Catalog::builtin(), &only_unknown).unwrap();
        let flow = flow::flow_from_value(generated.flow).unwrap();
        assert_eq!(
            branch_for(
                &flow,
                &json!({"log_id": "1", "data": {"type": "brand_new_code"}})
            ),
            "brand_new_code"
        );
        let nothing = Request {
            source: "gitlab".into(),
            events: vec![" ".into()],
            name: None,
        };
        assert_eq!(
            generate(Catalog::builtin(), &nothing),
            Err(GenerateError::NoEvents)
        );
    }

    #[test]
    fn unusable_names_and_sources_are_refused() {
        for bad in [
            "x".repeat(MAX_EVENT_NAME_CHARS + 1),
            "a\nb".into(),
            "{{trigger.body}}".into(),
        ] {
            let request = Request {
                source: "gitlab".into(),
                events: vec![bad.clone()],
                name: None,
            };
            assert!(
                matches!(generate(Catalog::builtin(), &request), Err(GenerateError::BadEventName(n)) if n == bad)
            );
        }
        let request = Request {
            source: "jira".into(),
            events: vec!["x".into()],
            name: None,
        };
        assert!(
            generate(Catalog::builtin(), &request)
                .unwrap_err()
                .to_string()
                .contains("known: activepieces, gitlab, auth0, auth0-logs")
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

    #[test]
    fn generated_flows_get_the_credential_their_source_sends() {
        let catalog = Catalog::builtin();
        let generated = |source: &str, event: &str| {
            generate(
                catalog,
                &Request {
                    source: source.into(),
                    events: vec![event.into()],
                    name: None,
                },
            )
            .unwrap()
            .flow
        };
        let mut flow = generated("gitlab", "user_created");
        let shown = add_credential(
            &mut flow,
            AuthChoice::default_for(Some("gitlab")),
            Some("gitlab"),
        )
        .unwrap();
        assert_eq!(shown, flow["trigger"]["auth"]);
        assert_eq!(shown["header"], "X-Gitlab-Event-Streaming-Token");
        let parsed = flow::flow_from_value(flow.clone()).unwrap();
        let crate::flow::Trigger::Webhook { auth, .. } = &parsed.trigger else {
            panic!("webhook")
        };
        assert!(auth.credential().unwrap().len() > 40, "{auth:?}");

        let mut flow = generated("activepieces", "flow.created");
        let shown = add_credential(
            &mut flow,
            AuthChoice::default_for(Some("activepieces")),
            Some("activepieces"),
        )
        .unwrap();
        assert!(shown["secret"].as_str().unwrap().starts_with("whsec_"));
        flow::flow_from_value(flow.clone()).expect("a valid Standard Webhooks secret");
        let mut again = generated("activepieces", "flow.created");
        let other = add_credential(&mut again, AuthChoice::StandardWebhooks, None).unwrap();
        assert_ne!(shown, other, "every flow gets its own credential");

        assert_eq!(
            AuthChoice::default_for(Some("auth0-logs")),
            AuthChoice::Bearer
        );
        let mut open = generated("auth0", "user.created");
        assert_eq!(
            add_credential(&mut open, AuthChoice::None, Some("auth0")),
            None
        );
        assert!(open["trigger"].get("auth").is_none());
        assert_eq!(
            template_source(catalog, "gitlab-mass-downloads"),
            Some("gitlab")
        );
        assert_eq!(template_source(catalog, "nope"), None);
    }
}
