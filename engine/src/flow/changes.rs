//! What one save of a flow changed, for the `data.changes` of a `flow.updated` audit event: a
//! reader of the audit log sees "step `notify` changed, step `enrich` added" without fetching
//! and diffing two versions (Activepieces records the operation — `ADD_ACTION`,
//! `UPDATE_ACTION`, `CHANGE_NAME` — for the same reason). Pure: two definitions in, a summary
//! out; the full difference stays available from the versions (`hookflow flow diff`).

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The summary of going from `old` to `new`:
/// `{"name": {"from", "to"}?, "trigger": bool, "description": bool,
///   "steps": {"added": [..], "removed": [..], "changed": [..]}}`.
/// Steps are matched by name at any depth (names are unique within a flow); a step is
/// `changed` when anything but its nested steps differs (for a router: also its branches'
/// conditions), including a move to another branch.
pub fn summarize(old: &Value, new: &Value) -> Value {
    let before = steps_by_name(old);
    let after = steps_by_name(new);
    let added: Vec<&str> = after
        .keys()
        .filter(|n| !before.contains_key(*n))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = before
        .keys()
        .filter(|n| !after.contains_key(*n))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = after
        .iter()
        .filter(|(n, step)| before.get(*n).is_some_and(|old| old != *step))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut out = json!({
        "trigger": old.get("trigger") != new.get("trigger"),
        "description": old.get("description") != new.get("description"),
        "steps": {"added": added, "removed": removed, "changed": changed},
    });
    if old.get("name") != new.get("name") {
        out["name"] = json!({"from": old.get("name"), "to": new.get("name")});
    }
    out
}

/// Every step of a definition by name, without its nested steps, with where it sits (its parent
/// step's name and branch), so moving a step counts as changing it.
fn steps_by_name(definition: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(steps) = definition.get("steps") {
        walk(steps, &Value::Null, &mut out);
    }
    out
}

fn walk(steps: &Value, parent: &Value, out: &mut BTreeMap<String, Value>) {
    for step in steps.as_array().into_iter().flatten() {
        let Some(object) = step.as_object() else {
            continue;
        };
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // The step itself: nested steps are compared on their own, by name; a router's branches
        // stay part of it without their steps (a changed condition changes the router).
        let mut own: Map<String, Value> = object.clone();
        own.remove("steps");
        if let Some(branches) = own.get_mut("branches").and_then(Value::as_array_mut) {
            for branch in branches.iter_mut().filter_map(Value::as_object_mut) {
                branch.remove("steps");
            }
        }
        out.insert(name.clone(), json!({"step": own, "parent": parent}));
        if let Some(inner) = object.get("steps") {
            walk(inner, &json!([name, "steps"]), out);
        }
        for (i, branch) in object
            .get("branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(inner) = branch.get("steps") {
                walk(inner, &json!([name, "branches", i]), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(name: &str, steps: Value) -> Value {
        json!({"name": name, "trigger": {"type": "webhook"}, "steps": steps})
    }

    fn step(name: &str, url: &str) -> Value {
        json!({"name": name, "plugin": "http@1.0.0", "input": {"url": url}})
    }

    #[test]
    fn identical_definitions_change_nothing() {
        let f = flow("a", json!([step("one", "http://x")]));
        let s = summarize(&f, &f);
        assert_eq!(
            s,
            json!({"trigger": false, "description": false,
                   "steps": {"added": [], "removed": [], "changed": []}})
        );
    }

    #[test]
    fn steps_added_removed_and_changed_by_name() {
        let old = flow(
            "a",
            json!([
                step("keep", "http://x"),
                step("edit", "http://1"),
                step("drop", "http://x")
            ]),
        );
        let new = flow(
            "a",
            json!([
                step("keep", "http://x"),
                step("edit", "http://2"),
                step("new", "http://x")
            ]),
        );
        let s = summarize(&old, &new);
        assert_eq!(s["steps"]["added"], json!(["new"]));
        assert_eq!(s["steps"]["removed"], json!(["drop"]));
        assert_eq!(s["steps"]["changed"], json!(["edit"]));
        assert_eq!(s["trigger"], false);
        assert!(s.get("name").is_none());
    }

    #[test]
    fn name_and_trigger_changes_are_reported() {
        let old = flow("before", json!([]));
        let mut new = flow("after", json!([]));
        new["trigger"]["auth"] = json!({"type": "header", "token": "t"});
        let s = summarize(&old, &new);
        assert_eq!(s["name"], json!({"from": "before", "to": "after"}));
        assert_eq!(s["trigger"], true);
    }

    #[test]
    fn nested_steps_are_compared_on_their_own_and_a_move_is_a_change() {
        let router = |inner_a: Value, inner_b: Value| {
            json!([{"name": "route", "type": "router", "branches": [
                {"name": "a", "when": "true", "steps": inner_a},
                {"name": "b", "when": "true", "steps": inner_b},
            ]}])
        };
        let old = flow("f", router(json!([step("inner", "http://1")]), json!([])));
        // An edit deep inside a branch changes that step, not its router.
        let edited = flow("f", router(json!([step("inner", "http://2")]), json!([])));
        let s = summarize(&old, &edited);
        assert_eq!(s["steps"]["changed"], json!(["inner"]));
        // Moving the step to the other branch changes it too.
        let moved = flow("f", router(json!([]), json!([step("inner", "http://1")])));
        let s = summarize(&old, &moved);
        assert_eq!(s["steps"]["changed"], json!(["inner"]));
        assert_eq!(s["steps"]["added"], json!([]));
        // A branch condition belongs to its router.
        let mut condition = old.clone();
        condition["steps"][0]["branches"][0]["when"] = json!("false");
        let s = summarize(&old, &condition);
        assert_eq!(s["steps"]["changed"], json!(["route"]));
    }
}
