//! Routers: first match, all match, fallback, nesting, and every condition operator.

use crate::common::*;
use serde_json::{Value, json};

fn cond(left: &str, operator: &str, right: Value) -> Value {
    let mut c = json!({"left": left, "operator": operator});
    if !right.is_null() {
        c["right"] = right;
    }
    c
}

fn branch(name: &str, conditions: Vec<Value>, step: &str) -> Value {
    json!({"name": name, "when": [conditions], "steps": [log_step(step, name)]})
}

#[tokio::test]
async fn first_match_all_match_fallback_and_nested() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "routing",
        json!([{
            "name": "by-action", "type": "router", "mode": "firstMatch",
            "branches": [
                {"name": "Run finished", "when": [[cond("{{trigger.body.action}}", "TEXT_EXACTLY_MATCHES", json!("flow.run.finished"))]],
                 "steps": [{
                    "name": "by-status", "type": "router", "mode": "firstMatch",
                    "branches": [
                        {"name": "Failed run", "when": [[cond("{{trigger.body.data.flowRun.status}}", "TEXT_EXACTLY_MATCHES", json!("FAILED"))],
                                                         [cond("{{trigger.body.data.flowRun.status}}", "TEXT_EXACTLY_MATCHES", json!("TIMEOUT"))]],
                         "steps": [log_step("failed", "Run {{trigger.body.data.flowRun.id}} failed")]},
                        {"name": "Otherwise", "fallback": true, "steps": [log_step("other-status", "fine")]}
                    ]}]},
                branch("Also finished (never reached in firstMatch)", vec![cond("{{trigger.body.action}}", "TEXT_CONTAINS", json!("finished"))], "second"),
                {"name": "Otherwise", "fallback": true, "steps": [log_step("fallback", "unknown event")]}
            ]
        }]),
    );
    let id = server.create_flow(flow).await;

    let failed = server.run_flow(&id, &json!({"action": "flow.run.finished", "data": {"flowRun": {"id": "r1", "status": "FAILED"}}})).await;
    assert_eq!(failed["status"], "SUCCEEDED", "{failed}");
    assert_eq!(step_names(&failed), ["by-action", "by-status", "failed"]);
    assert_eq!(
        step(&failed, "failed")["output"]["message"],
        "Run r1 failed"
    );
    let router = step(&failed, "by-action");
    assert_eq!(
        router["output"]["selectedBranches"],
        json!(["Run finished"])
    );
    // Every branch is evaluated and recorded, even after the first match.
    let branches = router["detail"]["branches"].as_array().unwrap();
    assert_eq!(branches[1]["matched"], true);
    assert_eq!(branches[1]["selected"], false);
    let evaluated = &branches[0]["conditions"][0][0];
    assert_eq!(evaluated["left"], "flow.run.finished");
    assert_eq!(evaluated["result"], true);

    let timeout = server
        .run_flow(
            &id,
            &json!({"action": "FLOW.RUN.FINISHED", "data": {"flowRun": {"status": "timeout"}}}),
        )
        .await;
    assert_eq!(
        step_names(&timeout),
        ["by-action", "by-status", "failed"],
        "OR group and case-insensitive default"
    );

    let ok = server
        .run_flow(
            &id,
            &json!({"action": "flow.run.finished", "data": {"flowRun": {"status": "SUCCEEDED"}}}),
        )
        .await;
    assert_eq!(step_names(&ok), ["by-action", "by-status", "other-status"]);

    let other = server
        .run_flow(&id, &json!({"action": "user.signed.in"}))
        .await;
    assert_eq!(step_names(&other), ["by-action", "fallback"]);
}

#[tokio::test]
async fn all_match_runs_every_matching_branch_in_order() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "all",
        json!([{
            "name": "fan-out", "type": "router", "mode": "allMatch",
            "branches": [
                branch("has user", vec![cond("{{trigger.body.userEmail}}", "EXISTS", Value::Null)], "a"),
                branch("is admin", vec![cond("{{trigger.body.role}}", "TEXT_EXACTLY_MATCHES", json!("ADMIN"))], "b"),
                branch("from gitlab", vec![cond("{{trigger.body.source}}", "TEXT_EXACTLY_MATCHES", json!("gitlab"))], "c"),
                {"name": "nothing", "fallback": true, "steps": [log_step("d", "none")]}
            ]
        }, log_step("after", "done")]),
    );
    let id = server.create_flow(flow).await;
    let run = server
        .run_flow(
            &id,
            &json!({"userEmail": "a@b.c", "role": "admin", "source": "auth0"}),
        )
        .await;
    assert_eq!(step_names(&run), ["fan-out", "a", "b", "after"]);
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(step_names(&run), ["fan-out", "d", "after"]);
}

/// Every operator with its right-hand value, a value that makes it hold and one that does not.
/// Each operator reads its own field (`trigger.body.<OPERATOR>`), so one event tests all 22.
fn operator_cases() -> Vec<(&'static str, Value, Value, Value)> {
    let date = "2026-11-21T20:42:58.983Z";
    vec![
        (
            "TEXT_CONTAINS",
            json!("LO WO"),
            json!("Hello World"),
            json!("Hello"),
        ),
        (
            "TEXT_DOES_NOT_CONTAIN",
            json!("xyz"),
            json!("Hello"),
            json!("aXYZb"),
        ),
        (
            "TEXT_EXACTLY_MATCHES",
            json!("Hello World"),
            json!("hello world"),
            json!("Hello World!"),
        ),
        (
            "TEXT_DOES_NOT_EXACTLY_MATCH",
            json!("hello"),
            json!("hello!"),
            json!("HELLO"),
        ),
        (
            "TEXT_STARTS_WITH",
            json!("hel"),
            json!("Hello"),
            json!("oh hello"),
        ),
        (
            "TEXT_DOES_NOT_START_WITH",
            json!("world"),
            json!("hello world"),
            json!("World peace"),
        ),
        (
            "TEXT_ENDS_WITH",
            json!("WORLD"),
            json!("hello world"),
            json!("world hello"),
        ),
        (
            "TEXT_DOES_NOT_END_WITH",
            json!("hello"),
            json!("hello world"),
            json!("oh HELLO"),
        ),
        ("NUMBER_IS_GREATER_THAN", json!(10), json!(42), json!(10)),
        (
            "NUMBER_IS_LESS_THAN",
            json!("100"),
            json!("99.5"),
            json!(100),
        ),
        ("NUMBER_IS_EQUAL_TO", json!(42), json!("42"), json!(41)),
        ("BOOLEAN_IS_TRUE", Value::Null, json!(true), json!(false)),
        ("BOOLEAN_IS_FALSE", Value::Null, json!(false), json!(true)),
        (
            "DATE_IS_BEFORE",
            json!("2030-01-01T00:00:00Z"),
            json!(date),
            json!("2031-01-01T00:00:00Z"),
        ),
        (
            "DATE_IS_EQUAL",
            json!(date),
            json!(date),
            json!("2026-11-21T20:42:59.000Z"),
        ),
        (
            "DATE_IS_AFTER",
            json!("2020-01-01T00:00:00Z"),
            json!(date),
            json!("2019-12-31T23:59:59Z"),
        ),
        (
            "LIST_CONTAINS",
            json!("SECURITY"),
            json!(["security", "audit"]),
            json!(["billing"]),
        ),
        (
            "LIST_DOES_NOT_CONTAIN",
            json!("billing"),
            json!(["security"]),
            json!(["Billing"]),
        ),
        ("LIST_IS_EMPTY", Value::Null, json!([]), json!(["x"])),
        ("LIST_IS_NOT_EMPTY", Value::Null, json!(["x"]), json!([])),
        ("EXISTS", Value::Null, json!("x"), json!("")),
        ("DOES_NOT_EXIST", Value::Null, Value::Null, json!("here")),
    ]
}

#[tokio::test]
async fn every_operator_true_and_false() {
    let server = Server::start().await;
    let cases = operator_cases();
    assert_eq!(cases.len(), 22);
    let branches: Vec<Value> = cases
        .iter()
        .map(|(op, right, _, _)| json!({"name": op, "when": [[cond(&format!("{{{{trigger.body.{op}}}}}"), op, right.clone())]], "steps": []}))
        .chain(std::iter::once(json!({"name": "none", "fallback": true, "steps": []})))
        .collect();
    let flow = webhook_flow(
        "operators",
        json!([{"name": "ops", "type": "router", "mode": "allMatch", "branches": branches}]),
    );
    let id = server.create_flow(flow).await;

    let true_event: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(op, _, yes, _)| (op.to_string(), yes.clone()))
        .collect();
    let run = server.run_flow(&id, &Value::Object(true_event)).await;
    let ops = step(&run, "ops");
    let expected: Vec<&str> = cases.iter().map(|(op, ..)| *op).collect();
    assert_eq!(
        ops["output"]["selectedBranches"],
        json!(expected),
        "every operator should hold: {}",
        ops["detail"]
    );

    let false_event: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(op, _, _, no)| (op.to_string(), no.clone()))
        .collect();
    let run = server.run_flow(&id, &Value::Object(false_event)).await;
    let ops = step(&run, "ops");
    assert_eq!(
        ops["output"]["selectedBranches"],
        json!(["none"]),
        "no operator should hold: {}",
        ops["detail"]
    );
}

#[tokio::test]
async fn case_sensitive_comparison_is_opt_in() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "case",
        json!([{"name": "r", "type": "router", "mode": "allMatch", "branches": [
            {"name": "insensitive", "when": [[{"left": "{{trigger.body.a}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "abc"}]], "steps": []},
            {"name": "sensitive", "when": [[{"left": "{{trigger.body.a}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "abc", "caseSensitive": true}]], "steps": []}
        ]}]),
    );
    let id = server.create_flow(flow).await;
    let run = server.run_flow(&id, &json!({"a": "ABC"})).await;
    assert_eq!(
        step(&run, "r")["output"]["selectedBranches"],
        json!(["insensitive"])
    );
}

/// Regression (hardening I): every condition recorded its rendered `left` whole, so 50
/// branches over a big field made a step record of 50 times the field. The decision still sees
/// the whole value; the trace keeps 1 KiB of each operand and says it was cut.
#[tokio::test]
async fn router_traces_keep_operands_small_however_big_the_event() {
    let server = Server::start().await;
    let branches: Vec<Value> = (0..50)
        .map(|i| {
            json!({"name": format!("b{i}"), "when": [[
                {"left": "{{trigger.body.big}}", "operator": "TEXT_CONTAINS", "right": format!("needle-{i}!")}
            ]], "steps": []})
        })
        .collect();
    let flow = json!({"name": "wide", "trigger": {"type": "webhook"}, "steps": [
        {"name": "route", "type": "router", "mode": "allMatch", "branches": branches}]});
    let id = server.create_flow(flow).await;
    let big = format!("{}needle-49!", "x".repeat(600_000));
    let run = server.run_flow(&id, &json!({"big": big})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{}", &run.to_string()[..300]);
    let route = step(&run, "route");
    assert_eq!(
        route["output"]["selectedBranches"],
        json!(["b49"]),
        "decided on the whole value"
    );
    let size = run.to_string().len();
    assert!(
        size < 2 * 600_000 + 200_000,
        "the run record is {size} bytes"
    );
    let left = route["detail"]["branches"][0]["conditions"][0][0]["left"]
        .as_str()
        .unwrap();
    assert!(
        left.contains("cut for the trace"),
        "{}",
        &left[left.len() - 60..]
    );
}
