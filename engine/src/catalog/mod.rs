//! The event catalog: every audit event type hookflow knows, per source (Activepieces, GitLab,
//! Auth0), with its description, a human summary template and a realistic sample payload. The
//! data lives in `templates/events/*.json` and is compiled into the binary.

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
    pub events: Vec<EventType>,
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
                let related = candidate.contains(&wanted) || wanted.contains(&candidate);
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
        assert_eq!(catalog.source_names(), ["activepieces", "gitlab", "auth0"]);
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
            }
        }
        assert!(catalog.source("activepieces").unwrap().events.len() >= 28);
        assert!(catalog.source("gitlab").unwrap().events.len() >= 25);
        assert!(
            catalog
                .source("AUTH0")
                .unwrap()
                .find("USER.CREATED")
                .is_some()
        );
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
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
