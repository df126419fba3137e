//! What an on-call engineer reads: one log line per refused webhook (flow, status, reason, never
//! the credential) and per run that did not succeed, JSON lines with `HOOKFLOW_LOG_FORMAT=json`,
//! no colour codes when the log is not a terminal, and a clear refusal of a bad format.

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The JSON log lines whose `fields.message` (or flattened `message`) is `message`.
fn lines_with(logs: &str, message: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}

async fn wait_for_line(server: &Server, message: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = lines_with(&server.logs(), message);
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refused_webhook_logs_exactly_one_line_without_the_credential() {
    let server = Server::start_with_logs(Options {
        env: vec![("HOOKFLOW_LOG_FORMAT", "json".into())],
        ..Options::default()
    })
    .await;
    let id = server
        .create_flow(json!({
            "name": "guarded",
            "trigger": {"type": "webhook", "auth": {"type": "header", "header": "X-Token", "value": "s3cr3t-token-value"}},
            "steps": [log_step("l", "ok")]
        }))
        .await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{id}")))
        .header("X-Token", "wrong-guess-0042")
        .json(&json!({"id": "e1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let refused = wait_for_line(&server, "webhook call refused").await;
    assert_eq!(refused.len(), 1, "{}", server.logs());
    assert_eq!(refused[0]["flow_id"], id.as_str());
    assert_eq!(refused[0]["status"], 401);
    assert_eq!(refused[0]["level"], "WARN");
    let logs = server.logs();
    assert!(!logs.contains("wrong-guess-0042") && !logs.contains("s3cr3t-token-value"));
    assert!(!logs.contains('\u{1b}'), "no colour codes in a file");

    // A run that fails is one line with its flow, run and reason.
    let failing = server
        .create_flow(webhook_flow(
            "failing",
            json!([{"name": "js", "type": "action", "plugin": "javascript@1.0.0",
                    "input": {"code": "exports.handler = async () => { throw new Error('nope'); };"}}]),
        ))
        .await;
    let run = server.run_flow(&failing, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let failed = wait_for_line(&server, "run did not succeed").await;
    assert_eq!(failed.len(), 1, "{}", server.logs());
    assert_eq!(failed[0]["run_id"], run["id"]);
    assert_eq!(failed[0]["flow_id"], failing.as_str());
    assert_eq!(failed[0]["status"], "FAILED");
    assert!(failed[0]["error"].as_str().unwrap().contains("nope"));
}

#[test]
fn an_unknown_log_format_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .arg("serve")
        .env("HOOKFLOW_LISTEN", "127.0.0.1:0")
        .env("HOOKFLOW_DATA_DIR", dir.path())
        .env("HOOKFLOW_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("HOOKFLOW_LOG_FORMAT must be text or json"),
        "{stderr}"
    );
}

/// A failed delivery attempt is one line naming the destination and what the receiver said.
#[tokio::test]
async fn a_failed_delivery_attempt_logs_one_line_per_attempt() {
    let receiver = crate::receiver::Receiver::start().await;
    receiver.answer("/down", 503, "text/plain", "maintenance");
    let server = Server::start_with_logs(Options {
        env: vec![
            ("HOOKFLOW_LOG_FORMAT", "json".into()),
            ("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into()),
            ("HOOKFLOW_DELIVERY_RETRY_SCHEDULE", "60".into()),
        ],
        ..Options::default()
    })
    .await;
    let response = server
        .admin(reqwest::Method::POST, "/v1/event-destinations")
        .json(&json!({"name": "down", "url": format!("{}/down", receiver.base)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let destination: Value = response.json().await.unwrap();
    // Creating a flow is an audit event, so the destination gets something to deliver.
    server
        .create_flow(webhook_flow("noise", json!([log_step("l", "ok")])))
        .await;
    let failed = wait_for_line(&server, "delivery attempt failed").await;
    assert!(!failed.is_empty(), "{}", server.logs());
    assert_eq!(failed[0]["destination_id"], destination["id"]);
    assert_eq!(failed[0]["status"], 503);
    assert_eq!(failed[0]["attempt"], 1);
}
