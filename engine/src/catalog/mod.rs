//! The event catalog: every audit event type hookflow knows, per source (Activepieces, GitLab,
//! Auth0 Event Streams, Auth0 Log Streams), with its description, a human summary template and a
//! realistic sample payload. The data lives in `templates/events/*.json` and is compiled into the
//! binary.
//!
//! A source is one delivery shape with one place that holds the event name
//! (`eventNamePath`). Auth0 sends two shapes: Event Streams deliver CloudEvents (the name in
//! `type`), Log Streams deliver tenant log entries (`{"log_id", "data": {"type": "f", ...}}`, the
//! name in `data.type`). They are two sources, `auth0` and `auth0-logs`, rather than one source
//! with two name paths: then every generated router tests exactly one path per branch, a body is
//! identified by the first path that holds a known name, and nothing downstream (generator,
//! test runs, `cloud_event`, the events picker) needs to know a source could have more than one.
//! Their names never collide (dotted names versus short log codes).

mod cloud_event;

pub use cloud_event::cloud_event;

use crate::flow::template;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::OnceLock;

const SOURCES: &[&str] = &[
    include_str!("../../../templates/events/activepieces.json"),
    include_str!("../../../templates/events/gitlab.json"),
    include_str!("../../../templates/events/auth0.json"),
    include_str!("../../../templates/events/auth0-logs.json"),
];

/// One system that sends audit events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Short id used in requests: `activepieces`, `gitlab`, `auth0`.
    pub source: String,
    pub display_name: String,
    /// Dotted path of the event name inside a body (`action`, `event_type`, `type`).
    pub event_name_path: String,
    pub description: String,
    /// The upstream release the event list was taken from, where one defines it (Activepieces:
    /// `@activepieces/shared`); `tools/catalog/` checks the list against that release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    pub events: Vec<EventType>,
}

/// Where a source's event names come from: a package release and the names it defines, as
/// recorded by `tools/catalog/activepieces.mjs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Package name, e.g. `@activepieces/shared`.
    pub package: String,
    pub version: String,
    /// Every event name that release defines, in its order.
    pub event_names: Vec<String>,
}

/// One event type with its sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    pub name: String,
    pub description: String,
    /// Template over the event body, e.g. `Flow run {{data.flowRun.id}} is finished`.
    pub summary: String,
    pub sample: Value,
}

impl EventType {
    /// The summary rendered for a concrete event body.
    pub fn summarize(&self, body: &Value) -> String {
        match template::render_str(&self.summary, body) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

/// All sources.
#[derive(Debug)]
pub struct Catalog {
    pub sources: Vec<Source>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| Catalog {
            sources: SOURCES
                .iter()
                .map(|text| serde_json::from_str(text).expect("templates/events/*.json is valid"))
                .collect(),
        })
    }

    /// A source by id (case-insensitive).
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources
            .iter()
            .find(|s| s.source.eq_ignore_ascii_case(name))
    }

    /// The ids of every source.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.source.as_str()).collect()
    }

    /// An event type by name in any source (first source wins), case-insensitive.
    pub fn find_any(&self, name: &str) -> Option<(&Source, &EventType)> {
        self.sources
            .iter()
            .find_map(|s| s.find(name).map(|e| (s, e)))
    }
}

impl Source {
    /// An event type by name, case-insensitive (event names are matched that way on intake too).
    pub fn find(&self, name: &str) -> Option<&EventType> {
        self.events
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// Up to five known names closest to `name`, best first, for "did you mean" answers.
    pub fn close_matches(&self, name: &str) -> Vec<String> {
        let wanted = name.to_ascii_lowercase();
        let mut scored: Vec<(usize, &str)> = self
            .events
            .iter()
            .filter_map(|e| {
                let candidate = e.name.to_ascii_lowercase();
                let distance = edit_distance(&wanted, &candidate);
                // Containment only counts from 3 characters: Auth0's one-letter log codes
                // (`s`, `f`, `w`) are inside almost any name.
                let related = wanted.len().min(candidate.len()) >= 3
                    && (candidate.contains(&wanted) || wanted.contains(&candidate));
                let near = distance <= (wanted.len().max(candidate.len()) / 3).max(2);
                (related || near).then_some((
                    if related { distance.min(1) } else { distance },
                    e.name.as_str(),
                ))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// The event name in a body, read at this source's `event_name_path`.
    pub fn event_name<'a>(&self, body: &'a Value) -> Option<&'a str> {
        self.event_name_path
            .split('.')
            .try_fold(body, |v, key| v.get(key))
            .and_then(Value::as_str)
    }
}

/// Levenshtein distance over bytes (event names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_sample_carries_its_own_name_and_summaries_render() {
        let catalog = Catalog::builtin();
        assert_eq!(
            catalog.source_names(),
            ["activepieces", "gitlab", "auth0", "auth0-logs"]
        );
        for source in &catalog.sources {
            let mut names = HashSet::new();
            for event in &source.events {
                assert!(
                    names.insert(event.name.to_ascii_lowercase()),
                    "duplicate {}",
                    event.name
                );
                assert_eq!(
                    source.event_name(&event.sample),
                    Some(event.name.as_str()),
                    "{} sample",
                    event.name
                );
                let summary = event.summarize(&event.sample);
                assert!(!summary.contains("{{"), "{}: {summary}", event.name);
                // Every value the summary names is in the sample: a summary must not read
                // "changed from X to " for the event it describes.
                for expression in event.summary.split("{{").skip(1) {
                    let expression = expression.split("}}").next().unwrap().trim();
                    let path = template::parse_path(expression).unwrap();
                    let value = template::lookup(&event.sample, &path);
                    assert!(
                        value.is_some_and(|v| !v.is_null() && v != ""),
                        "{} {}: {expression} is not in its sample",
                        source.source,
                        event.name
                    );
                }
            }
        }
        assert!(catalog.source("activepieces").unwrap().events.len() >= 28);
        assert!(catalog.source("gitlab").unwrap().events.len() >= 80);
        assert!(catalog.source("auth0-logs").unwrap().events.len() >= 40);
        assert!(
            catalog
                .source("AUTH0")
                .unwrap()
                .find("USER.CREATED")
                .is_some()
        );
    }

    /// The Activepieces catalog holds exactly the events of the release it records, which
    /// `tools/catalog/activepieces.mjs` read from that release's `ApplicationEventName`.
    #[test]
    fn activepieces_catalog_is_the_recorded_release() {
        let ap = Catalog::builtin().source("activepieces").unwrap();
        let release = ap
            .release
            .as_ref()
            .expect("activepieces.json records its release");
        assert_eq!(release.package, "@activepieces/shared");
        assert!(!release.version.is_empty());
        let catalog: HashSet<&str> = ap.events.iter().map(|e| e.name.as_str()).collect();
        let released: HashSet<&str> = release.event_names.iter().map(String::as_str).collect();
        let mut missing: Vec<_> = released.difference(&catalog).collect();
        let mut extra: Vec<_> = catalog.difference(&released).collect();
        missing.sort();
        extra.sort();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "activepieces.json vs {} {}: missing {missing:?}, not in the release {extra:?}",
            release.package,
            release.version
        );
        assert_eq!(released.len(), release.event_names.len(), "duplicate names");
        for name in [
            "project.replaced",
            "flow.run.retried",
            "signing.key.created",
            "project.release.created",
        ] {
            assert!(ap.find(name).is_some(), "{name}");
        }
    }

    #[test]
    fn log_stream_entries_are_named_by_data_type() {
        let catalog = Catalog::builtin();
        let logs = catalog.source("auth0-logs").unwrap();
        assert_eq!(logs.event_name_path, "data.type");
        let failed = logs.find("f").expect("failed login");
        let body = &failed.sample;
        assert_eq!(logs.event_name(body), Some("f"));
        assert!(body["log_id"].is_string(), "Log Streams webhook shape");
        assert_eq!(
            failed.summarize(body),
            format!(
                "Failed login for {} from {}",
                body["data"]["user_name"].as_str().unwrap(),
                body["data"]["ip"].as_str().unwrap()
            )
        );
        // As the CloudEvent a javascript step sees, the entry keeps its source and code.
        let wrapped = cloud_event(catalog, &serde_json::json!({ "body": body }), "run-1");
        assert_eq!(wrapped["source"], "auth0-logs");
        assert_eq!(wrapped["type"], "f");
        // Neither the CloudEvent source nor the others claim a log entry, and the log source
        // does not claim a CloudEvent.
        let event_streams = catalog.source("auth0").unwrap();
        assert_eq!(event_streams.event_name(body), None);
        let cloud_event = &event_streams.find("user.created").unwrap().sample;
        assert_eq!(logs.event_name(cloud_event), None);
        for code in [
            "s", "fp", "fu", "fs", "ss", "sapi", "fapi", "limit_wc", "pwd_leak", "scp",
        ] {
            assert!(logs.find(code).is_some(), "{code}");
        }
        // No other source has a log code, so `find_any` (test runs by event name) finds the
        // log entry's sample.
        for source in catalog.sources.iter().filter(|s| s.source != "auth0-logs") {
            for event in &logs.events {
                assert!(
                    source.find(&event.name).is_none(),
                    "{} in {}",
                    event.name,
                    source.source
                );
            }
        }
    }

    #[test]
    fn close_matches_suggest_real_names() {
        let ap = Catalog::builtin().source("activepieces").unwrap();
        let suggestions = ap.close_matches("flow.run.finishd");
        assert_eq!(
            suggestions.first().map(String::as_str),
            Some("flow.run.finished")
        );
        assert!(
            ap.close_matches("flow.run")
                .iter()
                .any(|n| n == "flow.run.started")
        );
        assert!(ap.close_matches("zzzzzzzzzzzz").is_empty());
        let logs = Catalog::builtin().source("auth0-logs").unwrap();
        assert!(logs.close_matches("brand_new").is_empty());
        assert!(
            logs.close_matches("limit_w")
                .contains(&"limit_wc".to_string())
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
