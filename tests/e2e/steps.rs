//! Action steps: templates, step outputs feeding later steps, retries with backoff,
//! continue-on-failure, and manual retry of a failed run from its failed step.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn templates_raw_values_interpolation_brackets_and_step_outputs() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "templates",
        json!([
            {"name": "shape", "type": "action", "plugin": "transform@0.1.0", "input": {
                "run": "{{trigger.body.data.flowRun}}",
                "status": "{{trigger['body']['data'][\"flowRun\"]['status']}}",
                "text": "Run {{trigger.body.data.flowRun.id}} took {{trigger.body.data.flowRun.duration}} ms",
                "missing": "[{{trigger.body.nope.deeper}}]",
                "first": "{{trigger.body.tags[0]}}",
                "nested": {"list": ["{{trigger.body.data.flowRun.duration}}", "x"]}
            }},
            log_step("note", "status={{steps.shape.output.status}} id={{steps.shape.output.run.id}}")
        ]),
    );
    let id = server.create_flow(flow).await;
    let run = server
        .run_flow(&id, &json!({"tags": ["a", "b"], "data": {"flowRun": {"id": "r9", "status": "FAILED", "duration": 1234}}}))
        .await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let out = &step(&run, "shape")["output"];
    assert_eq!(
        out["run"],
        json!({"id": "r9", "status": "FAILED", "duration": 1234}),
        "whole-string template keeps the JSON value"
    );
    assert_eq!(out["status"], "FAILED");
    assert_eq!(out["text"], "Run r9 took 1234 ms");
    assert_eq!(out["missing"], "[]");
    assert_eq!(out["first"], "a");
    assert_eq!(out["nested"]["list"], json!([1234, "x"]));
    assert_eq!(
        step(&run, "note")["output"]["message"],
        "status=FAILED id=r9"
    );
    assert_eq!(
        step(&run, "note")["detail"]["logs"][0]["message"],
        "status=FAILED id=r9",
        "log plugin writes the trace"
    );
}

#[tokio::test]
async fn retries_until_success_with_backoff() {
    let server = Server::start().await;
    let mut flaky = hostile_step("flaky", json!({"mode": "fail-until", "attempts": 3}));
    flaky["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 10, "maxBackoffMs": 50});
    let id = server
        .create_flow(webhook_flow("retry", json!([flaky])))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let s = step(&run, "flaky");
    assert_eq!(s["attempts"], 3);
    assert_eq!(s["output"], json!({"attempt": 3}));
    assert_eq!(s["detail"]["failedAttempts"].as_array().unwrap().len(), 2);

    let mut not_enough = hostile_step("flaky", json!({"mode": "fail-until", "attempts": 5}));
    not_enough["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 10});
    let id = server
        .create_flow(webhook_flow(
            "retry-exhausted",
            json!([not_enough, log_step("after", "x")]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    assert_eq!(step(&run, "flaky")["attempts"], 2);
    assert_eq!(step_names(&run), ["flaky"], "a failed step stops the run");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("attempt 2 of 5 fails on purpose"),
        "{run}"
    );
}

#[tokio::test]
async fn fatal_errors_are_not_retried() {
    let server = Server::start().await;
    let mut fatal = hostile_step("fatal", json!({"mode": "fatal"}));
    fatal["retry"] = json!({"maxAttempts": 5, "initialBackoffMs": 10});
    let id = server
        .create_flow(webhook_flow("fatal", json!([fatal])))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    assert_eq!(step(&run, "fatal")["attempts"], 1);
}

#[tokio::test]
async fn continue_on_failure_lets_later_steps_see_the_error() {
    let server = Server::start().await;
    let mut failing = hostile_step("optional", json!({"mode": "fail"}));
    failing["continueOnFailure"] = json!(true);
    let id = server
        .create_flow(webhook_flow(
            "continue",
            json!([
                failing,
                log_step(
                    "after",
                    "{{steps.optional.status}}: {{steps.optional.error}}"
                )
            ]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(step(&run, "optional")["status"], "FAILED");
    assert_eq!(
        step(&run, "after")["output"]["message"],
        "FAILED: requested failure"
    );
}

#[tokio::test]
async fn manual_retry_resumes_from_the_failed_step() {
    let server = Server::start().await;
    // First attempt of the run fails at `flaky`; the retry (run attempt 2) sees attempt 2 and
    // passes. `first` must not run again: its output is reused.
    let id = server
        .create_flow(webhook_flow(
            "resume",
            json!([
                hostile_step("first", json!({"mode": "echo"})),
                hostile_step("flaky", json!({"mode": "fail-until", "attempts": 2})),
                log_step("last", "done")
            ]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let run_id = run["id"].as_str().unwrap();
    let first_before = step(&run, "first").clone();

    let response = server
        .admin(Method::POST, &format!("/v1/flow-runs/{run_id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let retried = server.wait_run(run_id).await;
    assert_eq!(retried["status"], "SUCCEEDED", "{retried}");
    assert_eq!(retried["attempt"], 2);
    assert_eq!(step_names(&retried), ["first", "flaky", "last"]);
    assert_eq!(
        step(&retried, "first")["output"],
        first_before["output"],
        "succeeded step reused"
    );
    assert_eq!(
        step(&retried, "first")["output"]["context"]["attempt"],
        1,
        "not re-run on attempt 2"
    );

    // A succeeded run cannot be retried.
    let response = server
        .admin(Method::POST, &format!("/v1/flow-runs/{run_id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("SUCCEEDED"));
}
