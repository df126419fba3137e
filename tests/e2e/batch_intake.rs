//! Batched webhook bodies: a JSON array or JSON lines is one event (and one run) per element,
//! each deduplicated on its own, written all together or not at all.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;

async fn run_count(server: &Server, flow_id: &str) -> usize {
    let page: Value = server
        .get_json(&format!("/v1/flow-runs?flowId={flow_id}&limit=500"))
        .await;
    page["data"].as_array().expect("runs page").len()
}

/// The `events` of a batch answer, checked for shape: `(runId, duplicate)` in index order.
fn listed(answer: &Value) -> Vec<(String, bool)> {
    let events = answer["events"].as_array().expect("events in the answer");
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e["index"], i, "{answer}");
            (
                e["runId"].as_str().expect("runId").to_string(),
                e["duplicate"].as_bool().expect("duplicate"),
            )
        })
        .collect()
}

async fn post(
    server: &Server,
    flow_id: &str,
    content_type: &str,
    body: String,
    webhook_id: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url(&format!("/v1/webhooks/{flow_id}")))
        .header("content-type", content_type)
        .body(body);
    if let Some(id) = webhook_id {
        request = request.header("webhook-id", id);
    }
    request.send().await.unwrap()
}

async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    response.json().await.unwrap()
}

async fn events_total(server: &Server, outcome: &str) -> u64 {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("hookflow_events_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

#[tokio::test]
async fn each_element_is_its_own_run_and_a_redelivered_batch_starts_nothing() {
    let server = Server::start_with(Options::default()).await;
    let flow_id = server
        .create_flow(webhook_flow(
            "batches",
            json!([log_step("l", "hello {{trigger.body.name}}")]),
        ))
        .await;

    // A JSON array of 3: one with an id of its own, two keyed by the call's webhook-id.
    let elements = [
        json!({"id": "evt-a", "name": "one"}),
        json!({"name": "two", "n": 1.50}),
        json!({"name": "three"}),
    ];
    let body = serde_json::to_string(&elements).unwrap();
    let response = post(
        &server,
        &flow_id,
        "application/json",
        body.clone(),
        Some("msg_1"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let first = listed(&response.json().await.unwrap());
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|(_, duplicate)| !duplicate));
    for (i, (run_id, _)) in first.iter().enumerate() {
        let run = server.wait_run(run_id).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(
            run["trigger"]["body"], elements[i],
            "each run sees its element"
        );
        assert_eq!(run["trigger"]["headers"]["webhook-id"], "msg_1");
        let name = elements[i]["name"].as_str().unwrap();
        assert_eq!(
            step(&run, "l")["output"]["message"],
            format!("hello {name}")
        );
    }
    assert_eq!(run_count(&server, &flow_id).await, 3);

    // The sender redelivers the same batch: all duplicates of the first runs, nothing new.
    let response = post(&server, &flow_id, "application/json", body, Some("msg_1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again = listed(&response.json().await.unwrap());
    assert_eq!(
        again,
        first
            .iter()
            .map(|(run_id, _)| (run_id.clone(), true))
            .collect::<Vec<_>>()
    );
    assert_eq!(run_count(&server, &flow_id).await, 3);
    // Under another message id, only the element with an id of its own is a duplicate.
    let response = post(
        &server,
        &flow_id,
        "application/json",
        serde_json::to_string(&elements).unwrap(),
        Some("msg_2"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let other = listed(&response.json().await.unwrap());
    assert_eq!(other[0], (first[0].0.clone(), true));
    assert!(!other[1].1 && !other[2].1);
    assert_eq!(run_count(&server, &flow_id).await, 5);
    assert_eq!(events_total(&server, "accepted").await, 5);
    assert_eq!(events_total(&server, "duplicate").await, 4);

    // JSON lines, blank lines skipped: two events.
    let lines = "{\"name\": \"four\"}\r\n\n  \n{\"name\": \"five\", \"id\": 5}\n";
    let response = post(
        &server,
        &flow_id,
        "application/x-ndjson",
        lines.into(),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let ndjson = listed(&response.json().await.unwrap());
    assert_eq!(ndjson.len(), 2);
    for ((run_id, _), name) in ndjson.iter().zip(["four", "five"]) {
        let run = server.wait_run(run_id).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(
            step(&run, "l")["output"]["message"],
            format!("hello {name}")
        );
    }
    // The same lines as application/jsonl: the element with an id is a duplicate; the one
    // without (and no webhook-id) is a new event.
    let response = post(&server, &flow_id, "application/jsonl", lines.into(), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let jsonl = listed(&response.json().await.unwrap());
    assert!(!jsonl[0].1);
    assert_eq!(jsonl[1], (ndjson[1].0.clone(), true));

    // A single object keeps its answer shape.
    let response = server
        .post_event(&flow_id, &json!({"name": "single"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let single: Value = response.json().await.unwrap();
    assert!(
        single["runId"].is_string() && single.get("events").is_none(),
        "{single}"
    );
}

/// Auth0 Log Streams (custom webhook, "JSON array" format) posts arrays of `{log_id, data}`
/// with its authorization token.
#[tokio::test]
async fn an_auth0_log_stream_array_is_one_run_per_log_entry() {
    let server = Server::start_with(Options::default()).await;
    let flow_id = server
        .create_flow(json!({
            "name": "auth0 logs",
            "trigger": {"type": "webhook", "auth": {"type": "bearer", "token": "auth0-stream-token"}},
            "steps": [log_step("l", "{{trigger.body.data.type}} {{trigger.body.data.user_name}}")],
        }))
        .await;
    let entry = |log_id: &str, kind: &str, user: &str| {
        json!({
            "log_id": log_id,
            "data": {
                "date": "2026-11-21T20:42:00.000Z",
                "type": kind,
                "description": "",
                "client_name": "Acme Customer Portal",
                "ip": "203.0.113.24",
                "user_name": user,
                "log_id": log_id,
            }
        })
    };
    let batch = json!([
        entry("90020261121204200000000000000001", "s", "ada@example.com"),
        entry("90020261121204200000000000000002", "f", "bob@example.com"),
        entry("90020261121204200000000000000003", "fp", "cy@example.com"),
    ]);
    let url = server.url(&format!("/v1/webhooks/{flow_id}"));
    let refused = server.client.post(&url).json(&batch).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(run_count(&server, &flow_id).await, 0);
    let response = server
        .client
        .post(&url)
        .bearer_auth("auth0-stream-token")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let runs = listed(&response.json().await.unwrap());
    let expected = [
        "s ada@example.com",
        "f bob@example.com",
        "fp cy@example.com",
    ];
    for ((run_id, _), message) in runs.iter().zip(expected) {
        let run = server.wait_run(run_id).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(step(&run, "l")["output"]["message"], message);
        assert!(run["trigger"]["headers"].get("authorization").is_none());
    }
    assert_eq!(run_count(&server, &flow_id).await, 3);
}

#[tokio::test]
async fn a_bad_element_or_too_many_refuse_the_whole_batch() {
    let server = Server::start_with_logs(Options {
        env: vec![
            ("HOOKFLOW_MAX_BATCH_EVENTS", "4".into()),
            ("HOOKFLOW_LOG_FORMAT", "json".into()),
        ],
        ..Options::default()
    })
    .await;
    let flow_id = server
        .create_flow(webhook_flow("strict", json!([log_step("l", "x")])))
        .await;

    // Index 2 is broken: 400 naming it, and elements 0, 1 and 3 are not stored either.
    let body = r#"[{"id": "g0"}, {"id": "g1"}, {"id": "bad", "x": }, {"id": "g3"}]"#;
    let response = post(&server, &flow_id, "application/json", body.into(), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused = problem(response).await;
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.starts_with("events[2]: not valid JSON"), "{detail}");
    assert_eq!(refused["index"], 2);
    // Valid JSON, but an element its run could not parse (a lone surrogate): refused the same.
    let body = r#"[{"id": "g0"}, {"id": "g1"}, {"id": "bad", "x": "\ud800"}]"#;
    let response = post(&server, &flow_id, "application/json", body.into(), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(response).await["index"], 2);
    // JSON lines name the element's index and its line.
    let lines = "{\"id\": \"g0\"}\n\n{\"id\": \"g1\"}\nnot json\n";
    let response = post(
        &server,
        &flow_id,
        "application/x-ndjson",
        lines.into(),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused = problem(response).await;
    assert_eq!(
        (refused["index"].clone(), refused["line"].clone()),
        (json!(2), json!(4))
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("events[2] (line 4):"),
        "{refused}"
    );
    assert_eq!(run_count(&server, &flow_id).await, 0, "nothing stored");

    // Over HOOKFLOW_MAX_BATCH_EVENTS: 413 naming the limit.
    let five = Value::from_iter((0..5).map(|i| json!({ "a": i }))).to_string();
    let response = post(&server, &flow_id, "application/json", five, None).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let refused = problem(response).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("4-event limit (HOOKFLOW_MAX_BATCH_EVENTS)"),
        "{refused}"
    );
    assert_eq!(refused["limit"], 4);
    // An empty array is not a batch of nothing.
    let response = post(&server, &flow_id, "application/json", "[]".into(), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("no events")
    );
    // /sync answers for one run: a batch is refused before anything is stored.
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{flow_id}/sync")))
        .json(&json!([{"id": "s0"}, {"id": "s1"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        problem(response).await["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be sent to /sync")
    );
    assert_eq!(run_count(&server, &flow_id).await, 0, "nothing stored");
    assert_eq!(events_total(&server, "rejected_body").await, 5);
    assert_eq!(events_total(&server, "rejected_size").await, 1);

    // The good elements of the refused batches were never stored: sent again, they are new.
    let four = r#"[{"id": "g0"}, {"id": "g1"}, {"id": "g3"}, {"id": "s0"}]"#;
    let response = post(&server, &flow_id, "application/json", four.into(), None).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer = listed(&response.json().await.unwrap());
    assert!(answer.iter().all(|(_, duplicate)| !duplicate), "{answer:?}");
    assert_eq!(run_count(&server, &flow_id).await, 4);

    // One log line per refused call (written before the answer), naming the element.
    let logs = server.logs();
    let refusals: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "webhook call refused")
        .collect();
    assert_eq!(refusals.len(), 6, "{logs}");
    assert!(refusals.iter().all(|l| l["flow_id"] == flow_id.as_str()));
    let statuses: Vec<Option<u64>> = refusals.iter().map(|l| l["status"].as_u64()).collect();
    assert_eq!(statuses, [400, 400, 400, 413, 400, 400].map(Some));
    let reason = refusals[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("events[2]:"), "{reason}");
}

#[test]
fn a_bad_batch_limit_stops_the_server_with_one_line() {
    for value in ["0", "10001", "many"] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .arg("serve")
            .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
            .env("HOOKFLOW_DATA_DIR", dir.path())
            .env("HOOKFLOW_MAX_BATCH_EVENTS", value)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("max-batch-events"), "{value}: {err}");
        if value != "many" {
            // Our own check: one line (clap's parse error adds a usage hint).
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    let help = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--max-batch-events") && help.contains("HOOKFLOW_MAX_BATCH_EVENTS"));
}
