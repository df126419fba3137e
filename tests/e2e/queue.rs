//! The queue shares worker slots: a retry waiting out its backoff gives its slot back, and a
//! flood on one flow does not starve the others (hardening I).

use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One worker slot; flows as named.
async fn one_worker() -> Server {
    Server::start_with(Options {
        hostile: true,
        env: vec![("HOOKFLOW_WORKERS", "1".into())],
    })
    .await
}

/// Every run of a flow, oldest first.
async fn runs_of(server: &Server, flow_id: &str) -> Vec<Value> {
    let page = server
        .get_json(&format!("/v1/flow-runs?flowId={flow_id}&limit=100"))
        .await;
    let mut runs = page["data"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

/// Regression (hardening I, "retry backoff sleeps in a worker slot"): with one worker, a run
/// whose step fails retryably with a 3 s backoff used to hold the slot through the wait, so
/// every other flow stopped. Now it goes back to the queue until its retry is due: another
/// flow's event runs meanwhile, and the waiting run then succeeds on its second attempt as the
/// same execution (attempt 1, one `flow.run.started`, both attempts in its step's trace).
#[tokio::test]
async fn retry_backoff_gives_the_worker_slot_back() {
    let server = one_worker().await;
    let mut flaky = hostile_step("flaky", json!({"mode": "fail-until", "attempts": 2}));
    flaky["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 3000, "maxBackoffMs": 3000});
    let waits = server
        .create_flow(webhook_flow(
            "waits",
            json!([log_step("before", "once"), flaky]),
        ))
        .await;
    let other = server
        .create_flow(webhook_flow("other", json!([log_step("l", "ok")])))
        .await;

    let waiting = server.trigger(&waits, &json!({"id": "w1"})).await;
    let quick = server.trigger(&other, &json!({"id": "o1"})).await;
    let quick = server.wait_run(&quick).await;
    assert_eq!(quick["status"], "SUCCEEDED", "{quick}");
    let waited = server.wait_run(&waiting).await;
    assert_eq!(waited["status"], "SUCCEEDED", "{waited}");
    assert!(
        quick["finished"].as_str().unwrap() < waited["finished"].as_str().unwrap(),
        "the other flow ran while the retry waited: {quick} {waited}"
    );

    assert_eq!(waited["attempt"], 1, "the same execution: {waited}");
    assert_eq!(step_names(&waited), ["before", "flaky"]);
    let flaky = step(&waited, "flaky");
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(flaky["output"], json!({"attempt": 2}));
    let failed = flaky["detail"]["failedAttempts"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{flaky}");
    assert!(
        flaky["detail"].get("deferredRetry").is_none(),
        "no longer waiting: {flaky}"
    );
    assert_eq!(step(&waited, "before")["attempts"], 1, "not run again");
    let started = server
        .get_json("/v1/audit-events?action=flow.run.started&limit=100")
        .await;
    let of_run = started["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["flowRun"]["id"] == waiting.as_str())
        .count();
    assert_eq!(of_run, 1, "{started}");
}

/// A `/sync` caller whose run waits in the queue for a step's retry keeps waiting (its slot does
/// not) and is answered when the resumed run finishes.
#[tokio::test]
async fn a_sync_caller_is_answered_after_a_deferred_retry() {
    let server = one_worker().await;
    let mut flaky = hostile_step("flaky", json!({"mode": "fail-until", "attempts": 2}));
    flaky["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 500, "maxBackoffMs": 500});
    let id = server
        .create_flow(webhook_flow("sync-waits", json!([flaky])))
        .await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{id}/sync?timeoutMs=30000")))
        .json(&json!({"id": "s1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let full = server.get_run(run["id"].as_str().unwrap()).await;
    assert_eq!(step(&full, "flaky")["attempts"], 2, "{full}");
}

/// A run that gives its slot back still runs out of attempts: the attempt budget carries over
/// the deferrals, and the run fails once with the last attempt's error.
#[tokio::test]
async fn a_deferred_retry_keeps_its_attempt_budget() {
    let server = one_worker().await;
    let mut failing = hostile_step("failing", json!({"mode": "fail"}));
    failing["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 300, "maxBackoffMs": 300});
    let id = server
        .create_flow(webhook_flow("gives-up", json!([failing])))
        .await;
    let run = server.run_flow(&id, &json!({"id": "g1"})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["attempt"], 1);
    let failing = step(&run, "failing");
    assert_eq!(failing["attempts"], 3, "{failing}");
    assert_eq!(
        failing["detail"]["failedAttempts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(failing["detail"].get("deferredRetry").is_none());
}

/// Regression (hardening I, "a flood on one flow must not starve the others"): twenty slow
/// events on one flow, then one event on another, with two workers. The flood takes at most
/// one slot at intake and queued runs are claimed by their rank within their flow, so the other
/// flow's event runs after a few of the flood's, not after all twenty.
#[tokio::test]
async fn a_flood_on_one_flow_does_not_starve_another() {
    let server = Server::start_with(Options {
        hostile: true,
        env: vec![("HOOKFLOW_WORKERS", "2".into())],
    })
    .await;
    let flood = server
        .create_flow(webhook_flow(
            "flood",
            json!([hostile_step("nap", json!({"mode": "sleep", "ms": 1000}))]),
        ))
        .await;
    let quiet = server
        .create_flow(webhook_flow("quiet", json!([log_step("l", "ok")])))
        .await;
    for i in 0..20 {
        server
            .trigger(&flood, &json!({"id": format!("f{i}")}))
            .await;
    }
    let lone = server.trigger(&quiet, &json!({"id": "q1"})).await;
    let lone = server.wait_run(&lone).await;
    assert_eq!(lone["status"], "SUCCEEDED", "{lone}");
    let finished_at = lone["finished"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    let flooded = loop {
        let runs = runs_of(&server, &flood).await;
        if runs.len() == 20 && runs.iter().all(|r| r["status"] == "SUCCEEDED") {
            break runs;
        }
        assert!(Instant::now() < deadline, "the flood did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let before = flooded
        .iter()
        .filter(|r| r["finished"].as_str().unwrap() < finished_at.as_str())
        .count();
    assert!(
        before <= 4,
        "{before} of the flood's 20 runs finished before the other flow's one event"
    );
}
