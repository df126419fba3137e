//! The event catalog, the handler-flow generator and test runs.

use crate::common::*;
use crate::defaults::{call, send};
use base64::Engine as _;
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
    for source in ["activepieces", "gitlab", "auth0", "auth0-logs"] {
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
            json!({"payload": {"action": "x", "event_type": "x", "type": "x", "data": {"type": "x"}}}),
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
        .json(&json!({"events": ["flow.run.finished", "user.signed.in"], "auth": "none"}))
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

/// Generates a handler flow, asserting it was created; returns the answer. Its webhook is open
/// unless the request asks for a credential, so tests can post events as `Server::trigger`
/// does (the credential a generated flow gets by default is tested in `defaults.rs`).
async fn generate(server: &Server, mut request: Value) -> Value {
    if request.get("auth").is_none() {
        request["auth"] = json!("none");
    }
    let r = server
        .admin(Method::POST, "/v1/handler-flows")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{request}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn unknown_events_get_a_branch_without_a_sample() {
    let server = Server::start().await;
    let flow = generate(
        &server,
        json!({"events": ["flow.run.finishd", "user.signed.in", "agent.run.started"]}),
    )
    .await;
    assert_eq!(
        flow["unknownEvents"],
        json!([
            {"name": "flow.run.finishd", "closeMatches": ["flow.run.finished"]},
            {"name": "agent.run.started", "closeMatches": ["flow.run.started"]},
        ])
    );
    let definition = &flow["definition"];
    assert_eq!(
        definition["sampleData"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["user.signed.in"],
        "only catalog events have samples"
    );
    assert!(
        definition["description"]
            .as_str()
            .unwrap()
            .contains("not in the catalog: no sample: flow.run.finishd, agent.run.started"),
        "{definition}"
    );
    let id = flow["id"].as_str().unwrap();
    // An event with an unknown name takes its own branch, live and in a test run.
    let event = json!({"id": "ev-agent-1", "action": "agent.run.started", "data": {}});
    let (status, run) = test_run(&server, id, json!({"payload": event})).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(taken(&run), ["agent.run.started"]);
    assert_eq!(
        step(&run, "log-agent-run-started")["output"]["message"],
        "Activepieces event agent.run.started (not in the catalog: no sample)"
    );
    let live = server.run_flow(id, &event).await;
    assert_eq!(taken(&live), ["agent.run.started"]);
    // There is no sample to test it with by name; the answer says what is close.
    let (status, body) = test_run(&server, id, json!({"event": "flow.run.finishd"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("flow.run.finished"),
        "{body}"
    );
    // The known event still has its sample and branch.
    let (_, run) = test_run(&server, id, json!({"event": "user.signed.in"})).await;
    assert_eq!(taken(&run), ["user.signed.in"]);

    for (request, field) in [
        (json!({"events": ["x"], "source": "jira"}), "source:"),
        (json!({"events": [" "]}), "events:"),
        (json!({"events": ["{{trigger.body.secret}}"]}), "events:"),
        (json!({"events": ["x".repeat(129)]}), "events:"),
    ] {
        let r = server
            .admin(Method::POST, "/v1/handler-flows")
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{request}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().starts_with(field),
            "{request}: {body}"
        );
    }
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

/// Events the catalog gained (the newest Activepieces release, GitLab types, Auth0 Log Streams)
/// get flows whose samples take their own branch and log the catalog's summary.
#[tokio::test]
async fn new_catalog_events_route_to_their_branches() {
    let server = Server::start().await;
    let cases = [
        (
            "activepieces",
            vec![
                "project.replaced",
                "flow.run.retried",
                "signing.key.created",
            ],
            vec![
                (
                    "project.replaced",
                    "log-project-replaced",
                    "Project replace SUCCESS in 4812ms (0 failed; 2 flows created, 5 updated, 1 deleted)",
                ),
                (
                    "signing.key.created",
                    "log-signing-key-created",
                    "Signing key Embed SDK key (prod) was created by jane.doe@example.com",
                ),
            ],
        ),
        (
            "auth0-logs",
            vec!["f", "fp", "limit_wc", "sapi"],
            vec![
                (
                    "f",
                    "log-f",
                    "Failed login for jane.doe@example.com from 198.51.100.77",
                ),
                (
                    "fp",
                    "log-fp",
                    "Failed login for jane.doe@example.com from 198.51.100.77: wrong password",
                ),
            ],
        ),
        (
            "gitlab",
            vec![
                "login_failed_with_otp_authentication",
                "ci_instance_variable_created",
                "repository_git_operation",
            ],
            vec![(
                "login_failed_with_otp_authentication",
                "log-login-failed-with-otp-authentication",
                "Failed two-factor sign-in for grace from 198.51.100.23 (wrong OTP)",
            )],
        ),
    ];
    for (source, events, messages) in cases {
        let flow = generate(&server, json!({"source": source, "events": events})).await;
        assert_eq!(flow["unknownEvents"], json!([]), "{source}");
        let id = flow["id"].as_str().unwrap();
        for event in &events {
            let (status, run) = test_run(&server, id, json!({"event": event})).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            assert_eq!(run["status"], "SUCCEEDED", "{source} {event}: {run}");
            assert_eq!(taken(&run), [*event], "{source}");
        }
        for (event, log, message) in messages {
            let (_, run) = test_run(&server, id, json!({"event": event})).await;
            assert_eq!(
                step(&run, log)["output"]["message"],
                message,
                "{source} {event}"
            );
        }
    }
    // A Log Streams entry posted to the webhook is routed by its data.type.
    let logs = catalog(&server, "auth0-logs").await;
    let failed_login = &logs.iter().find(|e| e["name"] == "f").unwrap()["sample"];
    assert_eq!(failed_login["data"]["type"], "f");
    let flow = generate(
        &server,
        json!({"source": "auth0-logs", "events": ["f", "s"]}),
    )
    .await;
    let run = server
        .run_flow(flow["id"].as_str().unwrap(), failed_login)
        .await;
    assert_eq!(taken(&run), ["f"]);
    assert_eq!(run["environment"], "PRODUCTION");
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
    // A name the catalog does not know gets a branch; the note says which and what is close.
    let o = run(&["generate", "--events", "flow.run.finishd"]);
    assert_eq!(o.status.code(), Some(0));
    let note = String::from_utf8_lossy(&o.stderr);
    assert!(note.contains("not in the catalog"), "{note}");
    assert!(note.contains("did you mean flow.run.finished"), "{note}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("name: flow.run.finishd"));
    let o = run(&["generate", "--source", "jira", "--events", "x"]);
    assert_eq!(o.status.code(), Some(2));
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

/// A generated flow is live at once, so its webhook gets the credential its source sends (shown
/// once, masked afterwards) and the answer has the absolute URL; `auth: none` only when asked.
#[tokio::test]
async fn generated_flows_get_a_credential_unless_asked_for_none() {
    let server = Server::start().await;
    let event = r#"{"id": "e1", "action": "user.signed.in", "data": {}}"#;

    // Activepieces signs its webhooks: a Standard Webhooks secret by default.
    let (status, flow) = send(
        &server,
        Method::POST,
        "/v1/handler-flows",
        &json!({"events": ["user.signed.in"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{flow}");
    let id = flow["id"].as_str().unwrap();
    let url = flow["webhookUrl"].as_str().unwrap();
    assert_eq!(url, format!("{}/v1/webhooks/{id}", server.base), "absolute");
    let secret = flow["credential"]["secret"].as_str().unwrap().to_string();
    assert_eq!(flow["credential"]["type"], "standardWebhooks");
    assert!(secret.starts_with("whsec_"), "{flow}");
    assert_eq!(flow["definition"]["trigger"]["auth"]["secret"], "********");
    let shown = server.get_json(&format!("/v1/flows/{id}")).await;
    assert!(!shown.to_string().contains(&secret), "shown once: {shown}");
    assert_eq!(
        call(&server, url, &[], event).await,
        StatusCode::UNAUTHORIZED
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = hookflow::trigger::verify::sign(&secret, "msg_1", now, event.as_bytes())
        .map(|raw| {
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
        .unwrap();
    let signed = [
        ("webhook-id", "msg_1".to_string()),
        ("webhook-timestamp", now.to_string()),
        ("webhook-signature", signature),
    ];
    assert_eq!(
        call(&server, url, &signed, event).await,
        StatusCode::ACCEPTED
    );

    // GitLab streaming sends its token in its own header.
    let (status, flow) = send(
        &server,
        Method::POST,
        "/v1/handler-flows",
        &json!({"events": ["user_created"], "source": "gitlab"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{flow}");
    let credential = &flow["credential"];
    assert_eq!(credential["type"], "header");
    assert_eq!(credential["header"], "X-Gitlab-Event-Streaming-Token");
    let token = credential["value"].as_str().unwrap().to_string();
    let url = flow["webhookUrl"].as_str().unwrap();
    assert_eq!(
        call(&server, url, &[], "{}").await,
        StatusCode::UNAUTHORIZED
    );
    let wrong = [("X-Gitlab-Event-Streaming-Token", "guess".to_string())];
    assert_eq!(
        call(&server, url, &wrong, "{}").await,
        StatusCode::UNAUTHORIZED
    );
    let right = [("X-Gitlab-Event-Streaming-Token", token)];
    assert_eq!(call(&server, url, &right, "{}").await, StatusCode::ACCEPTED);

    // A template's flow, with a bearer token asked for.
    let (status, flow) = send(
        &server,
        Method::POST,
        "/v1/handler-flows",
        &json!({"template": "failed-runs-to-slack", "auth": "bearer"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{flow}");
    let token = flow["credential"]["token"].as_str().unwrap();
    let url = flow["webhookUrl"].as_str().unwrap();
    let bearer = [("authorization", format!("Bearer {token}"))];
    assert_eq!(
        call(&server, url, &[], event).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&server, url, &bearer, event).await,
        StatusCode::ACCEPTED
    );

    // Open only when asked for.
    let (status, flow) = send(
        &server,
        Method::POST,
        "/v1/handler-flows",
        &json!({"events": ["user.signed.in"], "auth": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{flow}");
    assert!(flow["credential"].is_null(), "{flow}");
    assert_eq!(flow["definition"]["trigger"]["auth"]["type"], "none");
    let url = flow["webhookUrl"].as_str().unwrap();
    assert_eq!(call(&server, url, &[], event).await, StatusCode::ACCEPTED);

    let (status, body) = send(
        &server,
        Method::POST,
        "/v1/handler-flows",
        &json!({"events": ["user.signed.in"], "auth": "password"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
