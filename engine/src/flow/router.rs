//! Router decisions: which branches of a router run for a given event.
//!
//! Mirrors Activepieces' router executor: every conditional branch is
//! evaluated (so the trace is complete), `firstMatch` runs the first
//! matching branch, `allMatch` runs every matching branch in order, and a
//! fallback branch matches only when no conditional branch matched.

use serde::Serialize;
use serde_json::Value;

use super::condition::{ConditionResult, evaluate_groups};
use super::model::{RouterMode, RouterStep};

/// The evaluation of one branch, recorded in the run trace so users can see
/// why a branch did or did not run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchEvaluation {
    /// The branch's label.
    pub name: String,
    /// Whether this is the router's fallback branch.
    pub fallback: bool,
    /// Whether its conditions held (for the fallback: no other branch
    /// matched).
    pub matched: bool,
    /// Whether it will run (depends on the router mode).
    pub selected: bool,
    /// Per-condition results, grouped like `when` (empty for the fallback).
    pub conditions: Vec<Vec<ConditionResult>>,
}

/// The complete decision of a router.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterDecision {
    /// One evaluation per branch, in definition order.
    pub branches: Vec<BranchEvaluation>,
    /// Indexes of the branches to run, in order.
    pub selected: Vec<usize>,
}

/// Evaluates a router against the template context and decides which
/// branches run.
pub fn decide(router: &RouterStep, ctx: &Value) -> RouterDecision {
    let mut branches: Vec<BranchEvaluation> = router
        .branches
        .iter()
        .map(|b| {
            let (matched, conditions) = if b.fallback {
                (false, Vec::new())
            } else {
                evaluate_groups(&b.when, ctx)
            };
            BranchEvaluation {
                name: b.name.clone(),
                fallback: b.fallback,
                matched,
                selected: false,
                conditions,
            }
        })
        .collect();
    let any_conditional = branches.iter().any(|b| !b.fallback && b.matched);
    for b in branches.iter_mut().filter(|b| b.fallback) {
        b.matched = !any_conditional;
    }
    let matching = branches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.matched)
        .map(|(i, _)| i);
    let selected: Vec<usize> = match router.mode {
        RouterMode::FirstMatch => matching.take(1).collect(),
        RouterMode::AllMatch => matching.collect(),
    };
    for &i in &selected {
        branches[i].selected = true;
    }
    RouterDecision { branches, selected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::model::{Branch, Condition, Operator};
    use serde_json::json;

    fn branch(name: &str, expected_action: &str) -> Branch {
        Branch {
            name: name.to_owned(),
            fallback: false,
            when: vec![vec![Condition {
                left: json!("{{trigger.body.action}}"),
                operator: Operator::TextContains,
                right: Some(json!(expected_action)),
                case_sensitive: false,
                time_zone: None,
            }]],
            steps: Vec::new(),
        }
    }

    fn fallback() -> Branch {
        Branch {
            name: "Otherwise".to_owned(),
            fallback: true,
            when: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn router(mode: RouterMode, branches: Vec<Branch>) -> RouterStep {
        RouterStep {
            name: "route".to_owned(),
            mode,
            branches,
        }
    }

    fn ctx(action: &str) -> Value {
        json!({"trigger": {"body": {"action": action}}})
    }

    #[test]
    fn first_match_selects_first_but_evaluates_all() {
        let r = router(
            RouterMode::FirstMatch,
            vec![
                branch("run", "run"),
                branch("finished", "finished"),
                fallback(),
            ],
        );
        let d = decide(&r, &ctx("flow.run.finished"));
        assert_eq!(d.selected, [0]);
        assert!(d.branches[0].matched && d.branches[0].selected);
        assert!(d.branches[1].matched && !d.branches[1].selected);
        assert!(!d.branches[2].matched && !d.branches[2].selected);
        assert_eq!(
            d.branches[1].conditions[0][0].left,
            json!("flow.run.finished")
        );
        assert!(d.branches[2].conditions.is_empty());
    }

    #[test]
    fn all_match_selects_every_match_in_order() {
        let r = router(
            RouterMode::AllMatch,
            vec![
                branch("a", "zzz"),
                branch("run", "run"),
                branch("finished", "finished"),
                fallback(),
            ],
        );
        let d = decide(&r, &ctx("flow.run.finished"));
        assert_eq!(d.selected, [1, 2]);
        assert_eq!(
            d.branches.iter().map(|b| b.selected).collect::<Vec<_>>(),
            [false, true, true, false]
        );
    }

    #[test]
    fn fallback_only_when_nothing_matched() {
        for mode in [RouterMode::FirstMatch, RouterMode::AllMatch] {
            // Fallback placed first still only runs when nothing matched.
            let r = router(mode, vec![fallback(), branch("a", "x"), branch("b", "y")]);
            let d = decide(&r, &ctx("nothing"));
            assert_eq!(d.selected, [0]);
            assert!(d.branches[0].matched && d.branches[0].fallback);
            let d = decide(&r, &ctx("y"));
            assert_eq!(d.selected, [2]);
            assert!(!d.branches[0].matched);
        }
        let r = router(RouterMode::FirstMatch, vec![branch("a", "x")]);
        assert!(decide(&r, &ctx("nothing")).selected.is_empty());
    }

    #[test]
    fn serializes_camel_case() {
        let r = router(RouterMode::FirstMatch, vec![fallback()]);
        let v = serde_json::to_value(decide(&r, &json!({}))).unwrap();
        assert_eq!(
            v,
            json!({"branches": [{"name": "Otherwise", "fallback": true, "matched": true, "selected": true, "conditions": []}], "selected": [0]})
        );
    }
}
