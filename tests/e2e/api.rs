//! The admin API and the CLI: authentication, validation with paths, versions, pagination,
//! plugins, health and metrics, `hookflow flow validate|run`.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Command;

#[tokio::test]
async fn admin_routes_need_the_token() {
    let server = Server::start().await;
    let r = server
        .client
        .get(server.url("/v1/flows"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = server
        .client
        .get(server.url("/v1/flow-runs"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Framework-level errors are problem+json too.
    let r = server
        .admin(Method::DELETE, "/v1/plugins")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = server
        .admin(Method::GET, "/v1/flow-runs?limit=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let plugins: Value = server.get_json("/v1/plugins").await;
    let names: Vec<String> = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "datadog-logs@0.1.0",
            "effect@0.1.0",
            "email@0.1.0",
            "filter@0.1.0",
            "first-seen@0.1.0",
            "hostile@0.1.0",
            "http-request@0.1.0",
            "javascript@1.0.0",
            "log@0.1.0",
            "loki@0.1.0",
            "respond@0.1.0",
            "slack@0.1.0",
            "splunk-hec@0.1.0",
            "teams@0.1.0",
            "transform@0.1.0"
        ]
    );
    let log = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "log")
        .unwrap();
    assert_eq!(log["inputSchema"]["required"], json!(["message"]));
    assert_eq!(log["sideEffects"], false);
}

#[tokio::test]
async fn invalid_flows_are_refused_with_every_problem_by_path() {
    let server = Server::start().await;
    let flow = json!({
        "name": "bad",
        "trigger": {"type": "webhook"},
        "steps": [
            log_step("a", "x"),
            {"name": "r", "type": "router", "mode": "firstMatch", "branches": [
                {"name": "b", "when": [[{"left": "x", "operator": "TEXT_EXACTLY_MATCHES", "right": "y"}, {"left": "x", "operator": "TEXT_EQ", "right": "y"}]], "steps": [
                    {"name": "a", "type": "action", "plugin": "nope@1.0.0", "input": {"m": "{{trigger.body"}}
                ]}
            ]}
        ]
    });
    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    let problems: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["path"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    let all = problems.join("\n");
    assert!(
        all.contains("steps[1].branches[0].when[0][1].operator: unknown operator \"TEXT_EQ\""),
        "{all}"
    );
    assert!(
        all.contains("steps[1].branches[0].steps[0].name"),
        "duplicate name: {all}"
    );
    assert!(
        all.contains("steps[1].branches[0].steps[0].input.m"),
        "bad template: {all}"
    );

    // Structurally valid, but the plugin is not installed.
    let flow = webhook_flow(
        "missing plugin",
        json!([{"name": "x", "type": "action", "plugin": "nope@1.0.0"}]),
    );
    let body: Value = server
        .admin(Method::POST, "/v1/flows")
        .json(&flow)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"][0]["path"], "steps[0].plugin");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not installed")
    );

    let r = server
        .admin(Method::POST, "/v1/flows")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn flows_are_versioned_yaml_works_and_runs_record_their_version() {
    let server = Server::start().await;
    let yaml = "name: v\ntrigger:\n  type: webhook\nsteps:\n  - name: say\n    type: action\n    plugin: log@0.1.0\n    input:\n      message: one\n";
    let r = server
        .admin(Method::POST, "/v1/flows")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["version"], 1);
    let run1 = server.run_flow(&id, &json!({})).await;

    let updated = webhook_flow("v", json!([log_step("say", "two")]));
    let r = server
        .admin(Method::PUT, &format!("/v1/flows/{id}"))
        .json(&updated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["version"], 2);
    let run2 = server.run_flow(&id, &json!({})).await;
    assert_eq!(
        (run1["flowVersion"].clone(), run2["flowVersion"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(step(&run2, "say")["output"]["message"], "two");

    let got: Value = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(got["definition"]["steps"][0]["input"]["message"], "two");

    assert_eq!(
        server
            .admin(Method::DELETE, &format!("/v1/flows/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.post_event(&id, &json!({})).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .admin(Method::GET, &format!("/v1/flows/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    // Runs of a deleted flow stay queryable.
    assert_eq!(
        server.get_run(run1["id"].as_str().unwrap()).await["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn run_list_paginates_with_stable_cursors_and_filters() {
    let server = Server::start().await;
    let ok = server
        .create_flow(webhook_flow("ok", json!([log_step("l", "x")])))
        .await;
    let bad = server
        .create_flow(webhook_flow(
            "bad",
            json!([hostile_step("f", json!({"mode": "fatal"}))]),
        ))
        .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            server.run_flow(&ok, &json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    server.run_flow(&bad, &json!({})).await;

    let list = |query: String| {
        let server = &server;
        async move { server.get_json(&format!("/v1/flow-runs?{query}")).await }
    };
    let page1 = list(format!("flowId={ok}&limit=2")).await;
    assert_eq!(page1["previous"], Value::Null);
    let page2 = list(format!(
        "flowId={ok}&limit=2&cursor={}",
        page1["next"].as_str().unwrap()
    ))
    .await;
    let page3 = list(format!(
        "flowId={ok}&limit=2&cursor={}",
        page2["next"].as_str().unwrap()
    ))
    .await;
    assert_eq!(page3["next"], Value::Null);
    let seen: Vec<String> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| {
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
        })
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let back = list(format!(
        "flowId={ok}&limit=2&cursor={}",
        page2["previous"].as_str().unwrap()
    ))
    .await;
    assert_eq!(back["data"], page1["data"]);

    let failed = list("status=FAILED".into()).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    let r = server
        .admin(Method::GET, "/v1/flow-runs?status=DONE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = server
        .admin(Method::GET, "/v1/flow-runs?limit=501")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookflow_runs_finished_total{status=\"SUCCEEDED\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookflow_runs_finished_total{status=\"FAILED\"} 1"),
        "{metrics}"
    );
}

fn hookflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn cli_validate_lists_problems_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: ''\ntrigger: {type: webhook}\nsteps:\n  - name: x\n    type: action\n    plugin: log@9.9.9\n  - name: r\n    type: router\n    mode: sometimes\n    branches: []\n").unwrap();
    let out = hookflow(&["flow", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("name:"), "{err}");
    assert!(err.contains("steps[1].mode"), "{err}");

    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        webhook_flow("good", json!([log_step("l", "x")])).to_string(),
    )
    .unwrap();
    let out = hookflow(&["flow", "validate", good.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = hookflow(&["flow", "validate", "/no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cli_flow_run_prints_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.json");
    let flow_json = webhook_flow(
        "local",
        json!([{"name": "r", "type": "router", "mode": "firstMatch", "branches": [
            {"name": "Failed run", "when": [[{"left": "{{trigger.body.data.flowRun.status}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "FAILED"}]],
             "steps": [log_step("alert", "run {{trigger.body.data.flowRun.id}} failed")]},
            {"name": "Otherwise", "fallback": true, "steps": []}
        ]}]),
    );
    std::fs::write(&flow, flow_json.to_string()).unwrap();
    let fixtures: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/activepieces-events.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let payload = dir.path().join("event.json");
    std::fs::write(&payload, fixtures["examples"][0].to_string()).unwrap();
    let out = hookflow(&[
        "flow",
        "run",
        flow.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("run SUCCEEDED"), "{text}");
    assert!(text.contains("▶ taken \"Failed run\""), "{text}");
    assert!(text.contains("run ZvPhjFqWMNR8iAqiOB2cN failed"), "{text}");

    let out = hookflow(&[
        "flow",
        "run",
        flow.to_str().unwrap(),
        "--payload",
        "/nope.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn cron_flows_fire_once_per_tick() {
    let server = Server::start().await;
    let flow = json!({"name": "every second", "trigger": {"type": "schedule", "cron": "* * * * * *"}, "steps": [log_step("tick", "{{trigger.body.scheduledAt}}")]});
    let id = server.create_flow(flow).await;
    // A scheduled flow has no webhook.
    assert_eq!(
        server.post_event(&id, &json!({})).await.status(),
        StatusCode::CONFLICT
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let runs = loop {
        let page: Value = server
            .get_json(&format!("/v1/flow-runs?flowId={id}&status=SUCCEEDED"))
            .await;
        let runs = page["data"].as_array().unwrap().clone();
        if runs.len() >= 3 {
            break runs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cron did not fire 3 times in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let mut ticks = std::collections::HashSet::new();
    for run in runs {
        let run = server.get_run(run["id"].as_str().unwrap()).await;
        let at = step(&run, "tick")["output"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(at.ends_with(".000Z"), "{at}");
        assert!(ticks.insert(at), "each tick fires once");
    }
}

#[test]
fn split_roles_need_postgres_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["serve", "--role", "worker", "--listen", "127.0.0.1:0"])
        .env("HOOKFLOW_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--role (HOOKFLOW_ROLE) api or worker needs a PostgreSQL database"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
