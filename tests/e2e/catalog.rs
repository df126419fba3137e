//! The event catalog, the handler-flow generator and test runs.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn catalog(server: &Server, source: &str) -> Vec<Value> {
    let body: Value = server
        .get_json(&format!("/v1/event-types?source={source}"))
        .await;
    body["data"].as_array().unwrap().clone()
}

/// Names of the branches each router in a run selected, in order.
fn taken(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "router")
        .flat_map(|s| {
            s["output"]["selectedBranches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn generated_flow_for_every_event_routes_each_sample_to_its_own_branch() {
    let server = Server::start().await;
    for source in ["activepieces", "gitlab", "auth0"] {
        let events = catalog(&server, source).await;
        assert!(!events.is_empty());
        let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
        let r = server
            .admin(Method::POST, "/v1/handler-flows")
            .json(&json!({"events": names, "source": source}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let flow: Value = r.json().await.unwrap();
        let flow_id = flow["id"].as_str().unwrap();
        assert_eq!(
            flow["definition"]["sampleData"].as_object().unwrap().len(),
            names.len()
        );
        for event in &events {
            let name = event["name"].as_str().unwrap();
            let (status, run) = test_run(&server, flow_id, json!({"event": name})).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            assert_eq!(run["status"], "SUCCEEDED", "{source} {name}: {run}");
            assert_eq!(run["environment"], "TESTING");
            let mut expected = vec![name.to_string()];
            if source == "activepieces" && name == "flow.run.finished" {
                expected.push("Failed run".into()); // the sample is a FAILED run
            }
            assert_eq!(taken(&run), expected, "{source} {name}");
            // The trace explains the choice: left value, operator, right value, result.
            let router = &run["steps"][0]["detail"]["branches"];
            let own = router
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["name"] == name)
                .unwrap();
            assert_eq!(own["conditions"][0][0]["left"], name);
            assert_eq!(own["conditions"][0][0]["operator"], "TEXT_EXACTLY_MATCHES");
            assert_eq!(own["conditions"][0][0]["result"], true);
        }
        // Something no branch handles goes to the top-level fallback.
        let (_, run) = test_run(
            &server,
            flow_id,
            json!({"payload": {"action": "x", "event_type": "x", "type": "x"}}),
        )
        .await;
        assert_eq!(taken(&run), ["Otherwise"]);
    }
}

#[tokio::test]
async fn finished_runs_that_succeeded_take_the_otherwise_branch() {
    let server = Server::start().await;
    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"events": ["flow.run.finished", "user.signed.in"]}))
        .send()
        .await
        .unwrap();
    let flow: Value = r.json().await.unwrap();
    let id = flow["id"].as_str().unwrap();
    let mut sample = flow["definition"]["sampleData"]["flow.run.finished"].clone();
    for (status, branch) in [
        ("SUCCEEDED", "Otherwise"),
        ("TIMEOUT", "Failed run"),
        ("MEMORY_LIMIT_EXCEEDED", "Failed run"),
    ] {
        sample["data"]["flowRun"]["status"] = json!(status);
        let (_, run) = test_run(&server, id, json!({"payload": sample})).await;
        assert_eq!(taken(&run), ["flow.run.finished", branch], "{status}");
    }
    // Live events reach the same flow through its webhook.
    let run = server
        .run_flow(id, &flow["definition"]["sampleData"]["user.signed.in"])
        .await;
    assert_eq!(taken(&run), ["user.signed.in"]);
    assert_eq!(run["environment"], "PRODUCTION");
}

#[tokio::test]
async fn unknown_events_are_refused_with_close_matches() {
    let server = Server::start().await;
    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"events": ["flow.run.finishd"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["unknownEvents"][0]["closeMatches"][0],
        "flow.run.finished"
    );
    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"events": ["x"], "source": "jira"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let id = server.create_flow(webhook_flow("t", json!([]))).await;
    let (status, body) = test_run(&server, &id, json!({"event": "user.signd.in"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("user.signed.in"),
        "{body}"
    );
    let (status, _) = test_run(&server, &id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn test_runs_skip_side_effects_unless_live_and_never_deduplicate() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "effects",
        json!([{"name": "send", "type": "action", "plugin": "effect@0.1.0", "input": {"to": "{{trigger.body.userEmail}}"}}, log_step("after", "{{steps.send.status}}")]),
    );
    let id = server.create_flow(flow).await;
    let payload = json!({"id": "same-id", "userEmail": "a@example.com"});
    let (_, run) = test_run(&server, &id, json!({"payload": payload})).await;
    let send = step(&run, "send");
    assert_eq!(send["status"], "SKIPPED");
    assert_eq!(send["detail"]["skipped"], "side effect in test run");
    assert_eq!(
        send["input"],
        json!({"to": "a@example.com"}),
        "shows what the step would have received"
    );
    assert_eq!(step(&run, "after")["output"]["message"], "SKIPPED");

    let (_, live) = test_run(&server, &id, json!({"payload": payload, "live": true})).await;
    assert_eq!(step(&live, "send")["status"], "SUCCEEDED");
    assert_eq!(
        step(&live, "send")["output"],
        json!({"sent": {"to": "a@example.com"}})
    );
    assert_ne!(run["id"], live["id"]);

    // A live event with the same id is not a duplicate of the test runs.
    let r = server.post_event(&id, &payload).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let run_id = r.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_string();
    let production = server.wait_run(&run_id).await;
    assert_eq!(
        step(&production, "send")["status"],
        "SUCCEEDED",
        "live events run side effects"
    );
}

#[test]
fn cli_generate_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flow.yaml");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let o = run(&[
        "generate",
        "--events",
        "flow.run.finished,user.signed.in",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&["flow", "validate", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "flow",
        "test",
        out.to_str().unwrap(),
        "--event",
        "flow.run.finished",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("▶ taken \"Failed run\""), "{text}");
    let o = run(&["generate", "--events", "flow.run.finishd"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean flow.run.finished"));
}

#[tokio::test]
async fn handler_templates_generate_testable_flows() {
    let server = Server::start().await;
    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"template": "failed-runs-to-slack"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let flow: Value = r.json().await.unwrap();
    let (_, run) = test_run(
        &server,
        flow["id"].as_str().unwrap(),
        json!({"event": "flow.run.finished"}),
    )
    .await;
    assert_eq!(taken(&run), ["Failed run"]);
    let slack = step(&run, "tell-slack");
    assert_eq!(
        slack["status"], "SKIPPED",
        "a test run does not post to Slack"
    );
    assert!(
        slack["input"]["text"]
            .as_str()
            .unwrap()
            .contains("failed with FAILED"),
        "{slack}"
    );

    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"template": "admin-role-changes-to-teams"}))
        .send()
        .await
        .unwrap();
    let flow: Value = r.json().await.unwrap();
    let (_, run) = test_run(
        &server,
        flow["id"].as_str().unwrap(),
        json!({"event": "project.role.updated"}),
    )
    .await;
    assert_eq!(taken(&run), ["Role grants admin permissions"]);

    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&json!({"template": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["generate", "--template", "everything-to-splunk"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("splunk-hec@0.1.0"));
}
