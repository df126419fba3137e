//! Test runs: run a flow synchronously against a sample payload — the flow's own `sampleData`
//! for an event type, else the catalog's sample, or a payload given outright. Test runs run in
//! the TESTING environment: never deduplicated, and side-effect steps are skipped unless live.

use crate::catalog::Catalog;
use crate::exec::{Executor, RunRequest, RunResult};
use crate::flow::Flow;
use crate::store::{Environment, Scope};
use serde_json::{Value, json};

/// What to run the flow against.
#[derive(Debug, Clone)]
pub enum TestInput {
    /// An event type: the flow's sample, else the catalog's.
    Event(String),
    /// A literal event body.
    Payload(Value),
}

/// The body a test run uses, or a message naming what is missing and what exists.
pub fn resolve_payload(flow: &Flow, input: &TestInput) -> Result<Value, String> {
    let name = match input {
        TestInput::Payload(body) => return Ok(body.clone()),
        TestInput::Event(name) => name,
    };
    if let Some(samples) = &flow.sample_data
        && let Some((_, sample)) = samples.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
    {
        return Ok(sample.clone());
    }
    let catalog = Catalog::builtin();
    if let Some((_, event)) = catalog.find_any(name) {
        return Ok(event.sample.clone());
    }
    let mut known: Vec<String> = flow
        .sample_data
        .iter()
        .flat_map(|s| s.keys().cloned())
        .collect();
    for source in &catalog.sources {
        known.extend(source.close_matches(name));
    }
    known.dedup();
    if known.is_empty() {
        Err(format!(
            "no sample for event {name:?}: the flow has no sampleData for it and the catalog does not know it"
        ))
    } else {
        Err(format!(
            "no sample for event {name:?}; close matches: {}",
            known.into_iter().take(8).collect::<Vec<_>>().join(", ")
        ))
    }
}

/// Executes a test run. `live` also runs steps whose plugin has side effects.
pub async fn execute(
    executor: &Executor,
    scope: &Scope,
    run_id: &str,
    flow_id: &str,
    flow: &Flow,
    body: Value,
    live: bool,
) -> RunResult {
    let request = RunRequest {
        run_id,
        scope,
        flow_id,
        flow,
        trigger: json!({ "body": body, "headers": {} }),
        environment: Environment::Testing,
        attempt: 1,
        prior_steps: Vec::new(),
        live,
        clock_ms: None,
        windows: None,
        defer_retries: false,
    };
    executor.execute(&request).await
}
