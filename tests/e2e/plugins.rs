//! Built-in action plugins against local stand-ins of the services, outbound HTTP policy
//! (allowedHosts, private addresses after DNS), secrets (grant, redaction), the filter, plugin
//! install without restart and refused imports.

use crate::common::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server in development mode, so plugins may call the loopback receiver over plain HTTP.
async fn dev_server() -> Server {
    Server::start_with(Options {
        hostile: true,
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
    })
    .await
}

async fn put_secret(server: &Server, name: &str, value: &str) -> StatusCode {
    server
        .admin(Method::PUT, &format!("/v1/secrets/{name}"))
        .json(&json!({"value": value}))
        .send()
        .await
        .unwrap()
        .status()
}

fn action(name: &str, plugin: &str, input: Value, hosts: &[&str], secrets: &[&str]) -> Value {
    json!({"name": name, "type": "action", "plugin": plugin, "input": input, "allowedHosts": hosts, "secrets": secrets})
}

#[tokio::test]
async fn http_request_with_a_secret_reaches_the_granted_host_and_never_leaks_it() {
    let server = dev_server().await;
    let receiver = Receiver::start().await;
    receiver.answer("/hook", 201, "application/json", r#"{"id": 42}"#);
    assert_eq!(
        put_secret(&server, "API_TOKEN", "tok-s3cr3t-value").await,
        StatusCode::CREATED
    );
    assert_eq!(
        put_secret(&server, "API_TOKEN", "tok-s3cr3t-value").await,
        StatusCode::NO_CONTENT
    );
    let listed: Value = server.get_json("/v1/secrets").await;
    assert_eq!(listed["data"][0]["name"], "API_TOKEN");
    assert!(
        !listed.to_string().contains("s3cr3t"),
        "values are never returned"
    );

    let flow = webhook_flow(
        "call",
        json!([
            action(
                "call",
                "http-request@0.1.0",
                json!({
                    "method": "POST",
                    "url": format!("{}/hook", receiver.base),
                    "json": {"event": "{{trigger.body.action}}"},
                    "auth": {"bearer": "{{secrets.API_TOKEN}}"}
                }),
                &[&receiver.base],
                &["API_TOKEN"]
            ),
            log_step("note", "created {{steps.call.output.body.id}}"),
            action(
                "echo",
                "hostile@0.1.0",
                json!({"mode": "echo", "token": "{{secrets.API_TOKEN}}"}),
                &[],
                &["API_TOKEN"]
            )
        ]),
    );
    let id = server.create_flow(flow).await;
    let run = server
        .run_flow(&id, &json!({"action": "flow.run.finished"}))
        .await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let seen = receiver.one("/hook");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.headers["authorization"], "Bearer tok-s3cr3t-value");
    assert_eq!(seen.json(), json!({"event": "flow.run.finished"}));
    assert_eq!(step(&run, "call")["output"]["status"], 201);
    assert_eq!(step(&run, "note")["output"]["message"], "created 42");
    assert_eq!(
        step(&run, "call")["input"]["auth"]["bearer"],
        "**REDACTED**"
    );
    assert_eq!(
        step(&run, "echo")["output"]["input"]["token"],
        "**REDACTED**",
        "plugin echo is scrubbed"
    );
    // A step naming a secret it is not granted is refused at save time (`defaults.rs`).
    assert!(
        !run.to_string().contains("s3cr3t"),
        "secret value appears nowhere in the run: {run}"
    );
}

/// A secret whose standard and URL-safe base64 differ and need padding.
const ODD_SECRET: &str = "tok-s3cr3t~~>?value";

/// Every form of [`ODD_SECRET`] the run must never show.
fn odd_secret_forms() -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let basic = STANDARD.encode(format!("user:{ODD_SECRET}"));
    vec![
        ODD_SECRET.to_string(),
        ODD_SECRET.to_uppercase(),
        "s3cr3t".to_string(),
        "S3CR3T".to_string(),
        STANDARD.encode(ODD_SECRET),
        URL_SAFE_NO_PAD.encode(ODD_SECRET),
        // The middle of the Basic credentials, away from the edges a few bits may show at.
        basic[12..basic.len() - 8].to_string(),
    ]
}

fn assert_no_secret_form(what: &str, text: &str) {
    for form in odd_secret_forms() {
        assert!(!text.contains(&form), "{what} shows {form:?}: {text}");
    }
}

/// Finding: `{(.): 1}` in a jq step wrote the secret as an object key in clear, and its base64
/// or upper-case form was recorded as is.
#[tokio::test]
async fn secrets_written_as_object_keys_or_encoded_are_redacted() {
    let server = dev_server().await;
    put_secret(&server, "API_TOKEN", ODD_SECRET).await;
    let data = json!({"token": "{{secrets.API_TOKEN}}"});
    let flow = webhook_flow(
        "encodings",
        json!([
            action(
                "keyed",
                "transform@0.1.0",
                json!({"jq": "{(.token): 1, nested: {(.token): .token}}", "data": data}),
                &[],
                &["API_TOKEN"]
            ),
            action(
                "encoded",
                "transform@0.1.0",
                json!({
                    "jq": r#"{b64: (.token | @base64), upper: (.token | ascii_upcase),
                              basic: ("Basic " + ("user:" + .token | @base64))}"#,
                    "data": data
                }),
                &[],
                &["API_TOKEN"]
            ),
            action(
                "echoed",
                "hostile@0.1.0",
                json!({"mode": "log", "message": "token {{secrets.API_TOKEN}} in a log line"}),
                &[],
                &["API_TOKEN"]
            )
        ]),
    );
    let id = server.create_flow(flow).await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        step(&run, "keyed")["output"],
        json!({"**REDACTED**": 1, "nested": {"**REDACTED**": "**REDACTED**"}})
    );
    let encoded = &step(&run, "encoded")["output"];
    assert_eq!(encoded["b64"], "**REDACTED**", "{encoded}");
    assert_eq!(encoded["upper"], "**REDACTED**", "{encoded}");
    let basic = encoded["basic"].as_str().unwrap();
    assert!(
        basic.starts_with("Basic dXNlcj") && basic.contains("**REDACTED**"),
        "{basic}"
    );
    assert!(
        step(&run, "echoed")
            .to_string()
            .contains("token **REDACTED** in a log line"),
        "{run}"
    );
    assert_no_secret_form("the run", &run.to_string());
}

/// Finding: a step not granted a secret could read it from an earlier step's output (as a key
/// or encoded), in its templates, in the run record and in what a `/sync` caller gets.
#[tokio::test]
async fn a_step_not_granted_a_secret_cannot_read_it_from_an_earlier_output() {
    let server = dev_server().await;
    put_secret(&server, "API_TOKEN", ODD_SECRET).await;
    let data = json!({"token": "{{secrets.API_TOKEN}}"});
    let flow = webhook_flow(
        "relay",
        json!([
            action(
                "holder",
                "hostile@0.1.0",
                json!({"mode": "echo", "token": "{{secrets.API_TOKEN}}"}),
                &[],
                &["API_TOKEN"]
            ),
            action(
                "keyed",
                "transform@0.1.0",
                json!({"jq": "{(.token): 1, b64: (.token | @base64)}", "data": data}),
                &[],
                &["API_TOKEN"]
            ),
            action(
                "reader",
                "transform@0.1.0",
                json!({
                    "plain": "{{steps.holder.output.input.token}}",
                    "keyed": "{{steps.keyed.output}}",
                    "b64": "[{{steps.keyed.output.b64}}]"
                }),
                &[],
                &[]
            ),
            action(
                "reply",
                "respond@0.1.0",
                json!({"body": {
                    "plain": "{{steps.holder.output.input.token}}",
                    "keyed": "{{steps.keyed.output}}",
                    "b64": "{{steps.keyed.output.b64}}"
                }}),
                &[],
                &[]
            )
        ]),
    );
    let id = server.create_flow(flow).await;
    let response = server
        .client
        .post(server.url(&format!("/v1/webhooks/{id}/sync")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer = response.text().await.unwrap();
    assert_no_secret_form("the /sync answer", &answer);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer,
        json!({"plain": "**REDACTED**", "keyed": {"**REDACTED**": 1, "b64": "**REDACTED**"},
               "b64": "**REDACTED**"})
    );

    let runs = server.get_json(&format!("/v1/flow-runs?flowId={id}")).await;
    let run_id = runs["data"][0]["id"].as_str().unwrap();
    let run = server.wait_run(run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    // What the step not granted the secret rendered from the earlier outputs.
    assert_eq!(
        step(&run, "reader")["output"],
        json!({"plain": "**REDACTED**", "keyed": {"**REDACTED**": 1, "b64": "**REDACTED**"},
               "b64": "[**REDACTED**]"})
    );
    assert_no_secret_form("the run record", &run.to_string());
}

#[tokio::test]
async fn hosts_not_granted_are_refused_and_the_trace_says_which() {
    let server = dev_server().await;
    let receiver = Receiver::start().await;
    let flow = webhook_flow(
        "refused",
        json!([action(
            "call",
            "http-request@0.1.0",
            json!({"url": format!("{}/x", receiver.base), "json": {}}),
            &["https://hooks.slack.com"],
            &[]
        )]),
    );
    let id = server.create_flow(flow).await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let call = step(&run, "call");
    let refused = call["detail"]["refusedRequests"][0].as_str().unwrap();
    assert!(
        refused.contains("not in the step's allowedHosts") && refused.contains("127.0.0.1"),
        "{refused}"
    );
    assert!(
        call["error"].as_str().unwrap().contains("refused"),
        "{call}"
    );
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn private_addresses_are_refused_after_dns_without_dev_mode() {
    let server = Server::start().await;
    let receiver = Receiver::start().await;
    let port = receiver.base.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/x");
    let flow = webhook_flow(
        "ssrf",
        json!([action(
            "call",
            "http-request@0.1.0",
            json!({"url": url, "json": {}}),
            &[&format!("https://localhost:{port}")],
            &[]
        )]),
    );
    let id = server.create_flow(flow).await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(run["status"], "FAILED");
    let refused = step(&run, "call")["detail"]["refusedRequests"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(refused.contains("private address 127.0.0.1"), "{refused}");
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn messaging_and_siem_plugins_send_what_the_services_expect() {
    let server = dev_server().await;
    let rx = Receiver::start().await;
    rx.answer("/slack/webhook", 200, "text/plain", "ok");
    rx.answer(
        "/api/chat.postMessage",
        200,
        "application/json",
        r#"{"ok": true, "ts": "1.2", "channel": "C1"}"#,
    );
    rx.answer("/teams", 202, "text/plain", "1");
    rx.answer(
        "/services/collector/event",
        200,
        "application/json",
        r#"{"text": "Success", "code": 0}"#,
    );
    rx.answer("/api/v2/logs", 202, "application/json", "{}");
    rx.answer("/loki/api/v1/push", 204, "text/plain", "");
    put_secret(&server, "SLACK_BOT_TOKEN", "xoxb-test-token").await;
    put_secret(&server, "HEC_TOKEN", "hec-token-1234").await;
    put_secret(&server, "DD_API_KEY", "dd-key-5678").await;
    let base = rx.base.as_str();
    let hosts = [base];
    let flow = webhook_flow(
        "fan-out",
        json!([
            action(
                "slack-hook",
                "slack@0.1.0",
                json!({"webhookUrl": format!("{base}/slack/webhook"), "text": "Run {{trigger.body.data.flowRun.id}} failed", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*failed*"}}]}),
                &hosts,
                &[]
            ),
            action(
                "slack-api",
                "slack@0.1.0",
                json!({"tokenSecret": "SLACK_BOT_TOKEN", "channel": "#oncall", "text": "failed", "apiUrl": format!("{base}/api")}),
                &hosts,
                &["SLACK_BOT_TOKEN"]
            ),
            action(
                "teams",
                "teams@0.1.0",
                json!({"webhookUrl": format!("{base}/teams"), "title": "Flow failed", "text": "Run {{trigger.body.data.flowRun.id}}", "facts": {"Status": "{{trigger.body.data.flowRun.status}}"}}),
                &hosts,
                &[]
            ),
            action(
                "splunk",
                "splunk-hec@0.1.0",
                json!({"url": base, "tokenSecret": "HEC_TOKEN", "event": "{{trigger.body}}", "index": "audit"}),
                &hosts,
                &["HEC_TOKEN"]
            ),
            action(
                "datadog",
                "datadog-logs@0.1.0",
                json!({"url": base, "apiKeySecret": "DD_API_KEY", "event": "{{trigger.body}}", "ddtags": "env:test"}),
                &hosts,
                &["DD_API_KEY"]
            ),
            action(
                "loki",
                "loki@0.1.0",
                json!({"url": base, "labels": {"source": "hookflow", "action": "{{trigger.body.action}}"}, "event": "{{trigger.body}}", "tenant": "team-a"}),
                &hosts,
                &[]
            )
        ]),
    );
    let id = server.create_flow(flow).await;
    let event = json!({"action": "flow.run.finished", "data": {"flowRun": {"id": "r1", "status": "FAILED"}}});
    let run = server.run_flow(&id, &event).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");

    let hook = rx.one("/slack/webhook").json();
    assert_eq!(hook["text"], "Run r1 failed");
    assert_eq!(hook["blocks"][0]["type"], "section");
    let api = rx.one("/api/chat.postMessage");
    assert_eq!(api.headers["authorization"], "Bearer xoxb-test-token");
    assert_eq!(api.json()["channel"], "#oncall");
    assert_eq!(step(&run, "slack-api")["output"]["ts"], "1.2");

    let card = rx.one("/teams").json();
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert_eq!(attachment["content"]["body"][0]["text"], "Flow failed");
    assert!(attachment["content"].to_string().contains("FAILED"));

    let hec = rx.one("/services/collector/event");
    assert_eq!(hec.headers["authorization"], "Splunk hec-token-1234");
    assert_eq!(hec.json()["event"], event);
    assert_eq!(hec.json()["index"], "audit");

    let dd = rx.one("/api/v2/logs");
    assert_eq!(dd.headers["dd-api-key"], "dd-key-5678");
    let logs = dd.json();
    assert!(
        logs.is_array() && logs[0]["ddsource"] == "hookflow" && logs[0]["ddtags"] == "env:test",
        "{logs}"
    );

    let loki = rx.one("/loki/api/v1/push");
    assert_eq!(loki.headers["x-scope-orgid"], "team-a");
    let stream = &loki.json()["streams"][0];
    assert_eq!(
        stream["stream"],
        json!({"source": "hookflow", "action": "flow.run.finished"})
    );
    let line: Value = serde_json::from_str(stream["values"][0][1].as_str().unwrap()).unwrap();
    assert_eq!(line, event);
    assert!(
        stream["values"][0][0].as_str().unwrap().len() >= 19,
        "nanosecond timestamp"
    );
    assert!(!run.to_string().contains("xoxb-test-token"));
}

#[tokio::test]
async fn filter_ends_the_run_early_as_succeeded() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "filtered",
        json!([
            action(
                "only-failures",
                "filter@0.1.0",
                json!({"value": "{{trigger.body.status}}", "operator": "equals", "compareTo": "FAILED", "reason": "run did not fail"}),
                &[],
                &[]
            ),
            log_step("alert", "failed!")
        ]),
    );
    let id = server.create_flow(flow).await;
    let passed = server.run_flow(&id, &json!({"status": "FAILED"})).await;
    assert_eq!(step_names(&passed), ["only-failures", "alert"]);
    let stopped = server.run_flow(&id, &json!({"status": "SUCCEEDED"})).await;
    assert_eq!(stopped["status"], "SUCCEEDED");
    assert_eq!(step_names(&stopped), ["only-failures"]);
    assert_eq!(
        step(&stopped, "only-failures")["detail"]["endedRun"],
        "run did not fail"
    );
}

#[tokio::test]
async fn plugins_install_without_restart_and_bad_ones_are_refused() {
    let mut server = Server::start_with(Options::default()).await;
    let flow = webhook_flow(
        "uses effect",
        json!([action("send", "effect@0.1.0", json!({"a": 1}), &[], &[])]),
    );
    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "not installed yet"
    );

    let wasm = std::fs::read(hookflow::builtins::EFFECT_PLUGIN_PATH).unwrap();
    let (status, info) = install(&server, wasm).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (
            info["name"].as_str(),
            info["version"].as_str(),
            info["sideEffects"].as_bool()
        ),
        (Some("effect"), Some("0.1.0"), Some(true))
    );
    let id = server.create_flow(flow).await;
    assert_eq!(
        server.run_flow(&id, &json!({})).await["status"],
        "SUCCEEDED"
    );

    // Kept across restarts.
    server.restart();
    assert_eq!(
        server.run_flow(&id, &json!({})).await["status"],
        "SUCCEEDED"
    );

    let sneaky = std::fs::read(hookflow::builtins::SNEAKY_PLUGIN_PATH).unwrap();
    let r = server
        .admin(Method::POST, "/v1/plugins")
        .body(sneaky)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("imports wasi:sockets/"),
        "{body}"
    );

    let r = server
        .admin(Method::POST, "/v1/plugins")
        .body(b"not wasm".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let log = hookflow::builtins::BUILTIN_PLUGINS
        .iter()
        .find(|(n, _)| *n == "log")
        .unwrap()
        .1
        .to_vec();
    let r = server
        .admin(Method::POST, "/v1/plugins")
        .body(log)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "built-ins cannot be replaced"
    );
}

#[tokio::test]
async fn step_input_is_checked_against_the_plugin_schema_at_save_time() {
    let server = Server::start().await;
    let flow = webhook_flow(
        "bad input",
        json!([{"name": "l", "type": "action", "plugin": "log@0.1.0", "input": {"msg": "x", "level": "loud"}}]),
    );
    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    let text = body["errors"].to_string();
    assert!(
        text.contains("steps[0].input.message") && text.contains("required by plugin log@0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("steps[0].input.msg") && text.contains("not accepted"),
        "{text}"
    );
    assert!(text.contains("steps[0].input.level"), "{text}");
    let bad_hosts = webhook_flow(
        "bad hosts",
        json!([{"name": "l", "type": "action", "plugin": "log@0.1.0", "input": {"message": "x"}, "allowedHosts": ["hooks.slack.com"], "secrets": ["no spaces"]}]),
    );
    let body: Value = server
        .admin(Method::POST, "/v1/flows")
        .json(&bad_hosts)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = body["errors"].to_string();
    assert!(
        text.contains("steps[0].allowedHosts[0]") && text.contains("steps[0].secrets[0]"),
        "{text}"
    );
}

/// The whole loop a plugin author goes through: new → build → run locally → install.
#[tokio::test]
async fn scaffolded_plugin_builds_runs_locally_and_installs() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("greeter");
    let hookflow = |args: &[&str], cwd: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = hookflow(
        &[
            "plugin",
            "new",
            "greeter",
            "--dir",
            project.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hookflow(&["plugin", "new", "Bad_Name"], dir.path())
            .status
            .code(),
        Some(2)
    );
    // The project carries its own copy of the SDK and the WIT interface: nothing points back
    // into this repository, so someone with only the binary can build it.
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("path = \"sdk\""), "{manifest}");
    assert!(!manifest.contains(env!("CARGO_MANIFEST_DIR")), "{manifest}");
    for file in [
        "sdk/Cargo.toml",
        "sdk/src/lib.rs",
        "sdk/wit/plugin.wit",
        "Cargo.lock",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }

    // Share the plugins' build directory so the SDK is not compiled again.
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/target");
    let build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--offline",
            ])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = format!("{target}/wasm32-wasip2/release/greeter_plugin.wasm");

    let out = hookflow(
        &[
            "flow",
            "run",
            "flow.yaml",
            "--payload",
            "event.json",
            "--plugin",
            &wasm,
        ],
        &project,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("hello world"), "{text}");

    let server = Server::start_with(Options::default()).await;
    let with_server = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
            .args(args)
            .env("HOOKFLOW_URL", &server.base)
            .env("HOOKFLOW_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let out = with_server(&["plugin", "install", &wasm]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("installed greeter@0.1.0"));
    let out = with_server(&["plugin", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("greeter@0.1.0"));
    let out = with_server(&["plugin", "install", hookflow::builtins::SNEAKY_PLUGIN_PATH]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wasi:sockets"));
}

/// Regression (hardening I): installing a component whose `describe()` sleeps hung
/// `POST /v1/plugins` (and a start with it in the plugin directory). It fails at the deadline.
#[tokio::test]
async fn a_describe_that_never_answers_fails_the_install_at_its_deadline() {
    let server = Server::start_with(Options::default()).await;
    let sleepy = std::fs::read(hookflow::builtins::SLEEPY_PLUGIN_PATH).unwrap();
    let r = server
        .admin(Method::POST, "/v1/plugins")
        .body(sleepy)
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .expect("an answer, not a hang");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("describe() did not answer within 10 s"),
        "{body}"
    );
    // The server is still fine.
    let plugins = server.get_json("/v1/plugins").await;
    assert!(!plugins["data"].as_array().unwrap().is_empty(), "{plugins}");
}

/// `component` with a custom section appended: the same plugin (name, version, code) in other
/// bytes, so its digest is new to every test and to the shared compile cache.
pub(crate) fn with_custom_section(component: &[u8], tag: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"hookflow-test";
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend(name);
    body.extend(tag);
    let mut bytes = component.to_vec();
    bytes.push(0);
    leb128(body.len(), &mut bytes);
    bytes.extend(body);
    bytes
}

async fn install(server: &Server, wasm: Vec<u8>) -> (StatusCode, Value) {
    let r = server
        .admin(Method::POST, "/v1/plugins")
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn remove(server: &Server, label: &str) -> (StatusCode, Value) {
    let (name, version) = label.split_once('@').unwrap();
    let r = server
        .admin(Method::DELETE, &format!("/v1/plugins/{name}/{version}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Compiled copies of the component with `digest` in the compile cache every test server
/// shares.
fn cached_copies(digest: &str) -> usize {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(digest))
                .count()
        })
        .unwrap_or(0)
}

fn greet_flow(name: &str) -> Value {
    webhook_flow(
        name,
        json!([{"name": "greet", "type": "action", "plugin": "greet@1.0.0",
                "input": {"who": "{{trigger.body.who}}"}}]),
    )
}

async fn put_flow(server: &Server, id: &str, flow: &Value, draft: bool) -> Value {
    let query = if draft { "?draft=true" } else { "" };
    let r = server
        .admin(Method::PUT, &format!("/v1/flows/{id}{query}"))
        .json(flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "PUT {id}{query}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_plugin_version_no_flow_uses_is_removed_unloaded_and_can_be_installed_again() {
    // The hostile set puts effect.wasm in the plugin directory.
    let server = Server::start_with(Options {
        hostile: true,
        ..Options::default()
    })
    .await;
    let greet = std::fs::read(hookflow::builtins::GREET_PLUGIN_PATHS[0]).unwrap();
    let first = with_custom_section(&greet, uuid::Uuid::new_v4().as_bytes());
    let (status, info) = install(&server, first).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let digest = info["digest"].as_str().unwrap().to_string();
    assert_eq!(cached_copies(&digest), 1, "compiled into the cache");

    // Used by the published version: refused, naming the flow.
    let id = server.create_flow(greet_flow("greets")).await;
    let (status, problem) = remove(&server, "greet@1.0.0").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&id) && detail.contains("published version 1"),
        "{detail}"
    );
    assert_eq!(problem["flows"][0]["flowId"], id.as_str(), "{problem}");
    assert_eq!(problem["flows"][0]["draft"], false, "{problem}");

    // Published without it, but a pending draft uses it: still refused, naming the draft.
    let plain = webhook_flow("greets", json!([log_step("log", "hi")]));
    put_flow(&server, &id, &plain, false).await;
    put_flow(&server, &id, &greet_flow("greets"), true).await;
    let (status, problem) = remove(&server, "greet@1.0.0").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("draft version 3"),
        "{problem}"
    );
    assert_eq!(problem["flows"][0]["draft"], true, "{problem}");

    // A draft without it replaces that one: only history (versions 1 and 3) names it now.
    put_flow(&server, &id, &plain, true).await;
    let (status, body) = remove(&server, "greet@1.0.0").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let r = server
        .admin(Method::GET, "/v1/plugins/greet/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no longer served");
    assert_eq!(cached_copies(&digest), 0, "its compiled copy is deleted");
    let events = server
        .get_json("/v1/audit-events?action=plugin.removed")
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "{events}");
    assert_eq!(
        events["data"][0]["data"]["plugin"]["digest"],
        digest.as_str()
    );
    assert_eq!(
        events["data"][0]["summary"],
        "Plugin greet@1.0.0 was removed"
    );
    // A test run of a version in history that names it says so instead of running.
    let (status, problem) = test_run(
        &server,
        &id,
        json!({"payload": {"who": "Ana"}, "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("greet@1.0.0"), "{problem}");
    let (status, _) = remove(&server, "greet@1.0.0").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "removed already");

    // Built-ins and plugin-directory files are not removable through the API.
    let (status, problem) = remove(&server, "log@0.1.0").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(problem["detail"].as_str().unwrap().contains("built-in"));
    let (status, problem) = remove(&server, "effect@0.1.0").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("plugin directory")
    );

    // The same name@version with other bytes installs now, and runs.
    let second = with_custom_section(&greet, uuid::Uuid::new_v4().as_bytes());
    let (status, info) = install(&server, second).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_ne!(info["digest"], digest.as_str());
    let again = server.create_flow(greet_flow("greets again")).await;
    let run = server.run_flow(&again, &json!({"who": "Bo"})).await;
    assert_eq!(step(&run, "greet")["output"]["greeting"], "hello, Bo");
}

/// Runs on PostgreSQL whatever `HOOKFLOW_TEST_DATABASE` says: several processes need it.
#[tokio::test]
async fn a_plugin_removed_through_one_process_stops_serving_in_the_others() {
    let database = TestDatabase::create();
    let a = database.start_server(&[]).await;
    let b = database.start_server(&[]).await;
    let greet = std::fs::read(hookflow::builtins::GREET_PLUGIN_PATHS[0]).unwrap();
    let (status, _) = install(&a, greet.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let served = |server: &Server| {
        let r = server.admin(Method::GET, "/v1/plugins/greet/1.0.0").send();
        async move { r.await.unwrap().status() == StatusCode::OK }
    };
    // B loads it (announced), then A removes it and B unloads it, announced the same way: the
    // bound is below B's 10 s fallback check.
    for (want, what) in [(true, "load"), (false, "unload")] {
        if !want {
            let (status, body) = remove(&a, "greet@1.0.0").await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            assert!(!served(&a).await);
        }
        let mut polls = 0;
        while served(&b).await != want {
            polls += 1;
            assert!(
                polls < 40,
                "B did not {what} greet@1.0.0 before its fallback check"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    // A flow saved on B cannot use it now; a new install with other bytes reaches B.
    let r = b
        .admin(Method::POST, "/v1/flows")
        .json(&greet_flow("greets"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = install(&a, with_custom_section(&greet, b"again")).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut polls = 0;
    while !served(&b).await {
        polls += 1;
        assert!(polls < 40, "B did not load the new bytes");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop((a, b));
}
