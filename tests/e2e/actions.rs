//! The `email`, `respond` and `transform` (jq) built-ins, and two versions of one plugin
//! installed side by side.

use crate::common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A real SMTP server on loopback (aiosmtpd, see `support/smtp_sink.py`) and the messages it
/// received, one JSON object each.
struct SmtpSink {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<Value>,
    port: u16,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/e2e/support/smtp_sink.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect(
                "start python3 (the e-mail tests need python3 with aiosmtpd: pip install aiosmtpd)",
            );
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("SMTP sink exited; is aiosmtpd installed? (pip install aiosmtpd)")
            .unwrap();
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap() as u16;
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || forward(lines, tx));
        SmtpSink {
            child,
            stdin,
            messages,
            port,
        }
    }

    /// A test server sending its e-mail through this sink, from `from`.
    async fn server(&self, from: &str) -> Server {
        Server::start_with(Options {
            env: vec![
                (
                    "HOOKFLOW_SMTP_URL",
                    format!("smtp://127.0.0.1:{}", self.port),
                ),
                ("HOOKFLOW_SMTP_FROM", from.to_string()),
            ],
            ..Options::default()
        })
        .await
    }

    /// The next message received, waiting up to 10 s.
    fn next(&self) -> Value {
        self.messages
            .recv_timeout(Duration::from_secs(10))
            .expect("no e-mail arrived within 10 s")
    }

    fn nothing_more(&self) {
        assert!(
            self.messages
                .recv_timeout(Duration::from_millis(300))
                .is_err(),
            "unexpected e-mail"
        );
    }
}

fn forward(lines: std::io::Lines<BufReader<ChildStdout>>, tx: mpsc::Sender<Value>) {
    for line in lines.map_while(Result::ok) {
        if let Ok(message) = serde_json::from_str(&line)
            && tx.send(message).is_err()
        {
            return;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email_step(input: Value, recipients: &[&str]) -> Value {
    json!({"name": "mail", "type": "action", "plugin": "email@0.1.0", "input": input,
           "allowedRecipients": recipients})
}

#[tokio::test]
async fn email_goes_through_the_configured_smtp_server_to_granted_recipients_only() {
    let smtp = SmtpSink::start();
    let server = smtp.server("hookflow <alerts@hookflow.test>").await;
    let flow = webhook_flow(
        "mail on sign-in",
        json!([email_step(
            json!({
                "to": "{{trigger.body.userEmail}}",
                "cc": ["security@example.com"],
                "subject": "New sign-in from {{trigger.body.ip}}",
                "text": "{{trigger.body.userEmail}} signed in from {{trigger.body.ip}}.",
                "html": "<p>Signed in from <b>{{trigger.body.ip}}</b></p>"
            }),
            &["*@example.com"]
        )]),
    );
    let id = server.create_flow(flow).await;
    let run = server
        .run_flow(
            &id,
            &json!({"action": "user.signed.in", "userEmail": "ana@example.com", "ip": "203.0.113.7"}),
        )
        .await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let output = &step(&run, "mail")["output"];
    assert_eq!(output["sent"], true);
    assert!(
        output["reply"].as_str().unwrap().starts_with("250"),
        "{output}"
    );

    let message = smtp.next();
    assert_eq!(message["mailFrom"], "alerts@hookflow.test");
    assert_eq!(
        message["rcptTos"],
        json!(["ana@example.com", "security@example.com"])
    );
    let data = message["data"].as_str().unwrap();
    for expected in [
        "Subject: New sign-in from 203.0.113.7",
        "To: ana@example.com",
        "Cc: security@example.com",
        "From: hookflow <alerts@hookflow.test>",
        "multipart/alternative",
        "ana@example.com signed in from 203.0.113.7.",
        "<b>203.0.113.7</b>",
    ] {
        assert!(data.contains(expected), "{expected:?} missing in:\n{data}");
    }

    // A recipient outside allowedRecipients: refused before any connection, named in the error.
    let run = server
        .run_flow(
            &id,
            &json!({"action": "user.signed.in", "userEmail": "eve@evil.test", "ip": "198.51.100.1"}),
        )
        .await;
    assert_eq!(run["status"], "FAILED");
    assert_eq!(
        step(&run, "mail")["error"],
        "recipient eve@evil.test refused: not in the step's allowedRecipients"
    );
    smtp.nothing_more();

    // Test runs skip e-mail (a side effect) unless asked to run live.
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{id}/test"))
        .json(&json!({"payload": {"userEmail": "ana@example.com", "ip": "203.0.113.9"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let trace: Value = r.json().await.unwrap();
    assert_eq!(
        step(&trace, "mail")["detail"]["skipped"],
        "side effect in test run",
        "{trace}"
    );
    smtp.nothing_more();
}

#[tokio::test]
async fn email_without_an_smtp_server_or_grant_is_refused_with_the_reason() {
    let server = Server::start_with(Options::default()).await;
    let input = json!({"to": "ops@example.com", "subject": "s", "text": "t"});
    let id = server
        .create_flow(webhook_flow(
            "mail",
            json!([email_step(input.clone(), &["ops@example.com"])]),
        ))
        .await;
    let run = server.run_flow(&id, &json!({})).await;
    assert_eq!(
        step(&run, "mail")["error"],
        "e-mail is not configured on this server (set HOOKFLOW_SMTP_URL)"
    );

    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&webhook_flow("bad", json!([email_step(input, &["ops@*"])])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.to_string().contains("steps[0].allowedRecipients[0]"),
        "{body}"
    );
}

#[tokio::test]
async fn respond_sets_the_sync_webhook_response() {
    let server = Server::start_with(Options::default()).await;
    let flow = json!({
        "name": "respond",
        "trigger": {"type": "webhook"},
        "steps": [
            {"name": "route", "type": "router", "mode": "firstMatch", "branches": [
                {"name": "Ping", "when": [[{"left": "{{trigger.body.action}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "ping"}]],
                 "steps": [{"name": "pong", "type": "action", "plugin": "respond@0.1.0", "input": {
                    "status": 200,
                    "headers": {"x-handled-by": "hookflow"},
                    "body": {"pong": "{{trigger.body.id}}"}
                 }}]},
                {"name": "Otherwise", "fallback": true,
                 "steps": [{"name": "reject", "type": "action", "plugin": "respond@0.1.0", "input": {
                    "status": 422, "body": "unknown action {{trigger.body.action}}"
                 }}]}
            ]}
        ]
    });
    let id = server.create_flow(flow).await;
    let sync = |body: Value| {
        server
            .client
            .post(server.url(&format!("/v1/webhooks/{id}/sync")))
            .json(&body)
            .send()
    };
    let r = sync(json!({"action": "ping", "id": "e1"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-handled-by"], "hookflow");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"pong": "e1"}));
    // The same event again: a duplicate, answered from the stored run with the same response.
    let again = sync(json!({"action": "ping", "id": "e1"})).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["x-handled-by"], "hookflow");
    assert_eq!(again.json::<Value>().await.unwrap(), json!({"pong": "e1"}));

    let r = sync(json!({"action": "other", "id": "e2"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "unknown action other");

    // The host refuses headers the server owns; the step fails and says which.
    let bad = webhook_flow(
        "bad respond",
        json!([{"name": "r", "type": "action", "plugin": "respond@0.1.0",
                "input": {"headers": {"Content-Length": "1"}}}]),
    );
    let bad_id = server.create_flow(bad).await;
    let run = server.run_flow(&bad_id, &json!({})).await;
    assert_eq!(
        step(&run, "r")["error"],
        "header Content-Length is set by the server"
    );
}

fn jq_step(name: &str, input: Value) -> Value {
    json!({"name": name, "type": "action", "plugin": "transform@0.1.0", "input": input})
}

#[tokio::test]
async fn transform_runs_jq_inside_the_component() {
    let server = Server::start_with(Options::default()).await;
    let flow = webhook_flow(
        "jq",
        json!([
            jq_step("shape", json!({
                "jq": "{who: .userEmail, failed: [.data.runs[] | select(.status == \"FAILED\") | .id], n: (.data.runs | length), top: .data.runs[:$limit] | map(.id)}",
                "data": "{{trigger.body}}",
                "vars": {"limit": 1}
            })),
            jq_step("each", json!({"jq": ".[] | ascii_upcase", "data": ["a", "b"], "all": true})),
            jq_step("legacy", json!({"summary": "{{steps.shape.output.who}} has {{steps.shape.output.n}} runs"})),
            {"name": "many", "type": "action", "plugin": "transform@0.1.0", "continueOnFailure": true,
             "input": {"jq": ".[]", "data": [1, 2]}},
            {"name": "syntax", "type": "action", "plugin": "transform@0.1.0", "continueOnFailure": true,
             "input": {"jq": ".a | (", "data": {}}},
            {"name": "thrown", "type": "action", "plugin": "transform@0.1.0", "continueOnFailure": true,
             "input": {"jq": "error(\"no runs\")", "data": null}}
        ]),
    );
    let id = server.create_flow(flow).await;
    let body = json!({"userEmail": "ana@example.com", "data": {"runs": [
        {"id": "r1", "status": "SUCCEEDED"}, {"id": "r2", "status": "FAILED"}, {"id": "r3", "status": "FAILED"}
    ]}});
    let run = server.run_flow(&id, &body).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(
        step(&run, "shape")["output"],
        json!({"who": "ana@example.com", "failed": ["r2", "r3"], "n": 3, "top": ["r1"]})
    );
    assert_eq!(step(&run, "each")["output"], json!(["A", "B"]));
    assert_eq!(
        step(&run, "legacy")["output"],
        json!({"summary": "ana@example.com has 3 runs"})
    );
    assert_eq!(
        step(&run, "many")["error"],
        "jq expression produced 2 results; wrap it in [ ... ] or set \"all\": true"
    );
    let syntax = step(&run, "syntax")["error"].as_str().unwrap();
    assert!(
        syntax.starts_with("jq expression does not parse"),
        "{syntax}"
    );
    assert_eq!(step(&run, "thrown")["error"], "jq error: no runs");
}

#[tokio::test]
async fn two_versions_of_a_plugin_run_side_by_side_and_flows_keep_their_pin() {
    let server = Server::start_with(Options::default()).await;
    let install = |path: &str| {
        let wasm = std::fs::read(path).unwrap();
        server
            .admin(Method::POST, "/v1/plugins")
            .header("content-type", "application/wasm")
            .body(wasm)
            .send()
    };
    let [v1, v2] = hookflow::builtins::GREET_PLUGIN_PATHS;
    assert_eq!(install(v1).await.unwrap().status(), StatusCode::CREATED);
    let pinned_v1 = server
        .create_flow(webhook_flow(
            "v1",
            json!([{"name": "greet", "type": "action", "plugin": "greet@1.0.0", "input": {"who": "{{trigger.body.who}}"}}]),
        ))
        .await;
    let run = server.run_flow(&pinned_v1, &json!({"who": "Ana"})).await;
    assert_eq!(step(&run, "greet")["output"]["greeting"], "hello, Ana");

    // Version 2 arrives without a restart; the v1 flow keeps running v1.
    assert_eq!(install(v2).await.unwrap().status(), StatusCode::CREATED);
    let pinned_v2 = server
        .create_flow(webhook_flow(
            "v2",
            json!([{"name": "greet", "type": "action", "plugin": "greet@2.0.0", "input": {"who": "{{trigger.body.who}}"}}]),
        ))
        .await;
    let bo = json!({"who": "Bo"});
    let (a, b) = tokio::join!(
        server.run_flow(&pinned_v1, &bo),
        server.run_flow(&pinned_v2, &bo)
    );
    assert_eq!(
        step(&a, "greet")["output"],
        json!({"greeting": "hello, Bo", "version": 1})
    );
    assert_eq!(
        step(&b, "greet")["output"],
        json!({"greeting": "good day, Bo", "version": 2})
    );

    let plugins: Value = server.get_json("/v1/plugins").await;
    let versions: Vec<&str> = plugins["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "greet")
        .map(|p| p["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"]);

    // A flow pinning a version that is not installed is refused at save time.
    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&webhook_flow(
            "v3",
            json!([{"name": "greet", "type": "action", "plugin": "greet@3.0.0", "input": {"who": "x"}}]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(body.to_string().contains("greet@3.0.0"), "{body}");
}

#[tokio::test]
async fn new_ip_sign_in_template_mails_once_per_new_address() {
    let smtp = SmtpSink::start();
    let server = smtp.server("alerts@hookflow.test").await;
    let id = flow_from_template(&server, "new-ip-sign-in-to-email").await;
    let id = id.as_str();

    // A test run with the catalog sample: the branch is taken, the e-mail skipped, and the IP
    // is not remembered (so the live event below still counts as new).
    let (_, trace) = test_run(&server, id, json!({"event": "user.signed.in"})).await;
    assert_eq!(
        step(&trace, "check-ip")["output"]["firstSeen"],
        true,
        "{trace}"
    );
    assert_eq!(step(&trace, "email-user")["status"], "SKIPPED");
    smtp.nothing_more();

    let sign_in = |ip: &str, event_id: &str| {
        json!({"id": event_id, "action": "user.signed.in", "userId": "u1",
               "userEmail": "jane.doe@example.com", "ip": ip, "created": "2026-11-22T01:00:00Z",
               "projectDisplayName": "Billing", "data": {}})
    };
    let run = server.run_flow(id, &sign_in("203.0.113.24", "e1")).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let message = smtp.next();
    assert_eq!(
        message["rcptTos"],
        json!(["jane.doe@example.com", "security@example.com"])
    );
    assert!(
        message["data"]
            .as_str()
            .unwrap()
            .contains("Subject: New sign-in from 203.0.113.24")
    );

    // Same user, same IP: known, no mail. A new IP: mail again.
    let run = server.run_flow(id, &sign_in("203.0.113.24", "e2")).await;
    assert_eq!(step(&run, "check-ip")["output"]["firstSeen"], false);
    assert!(step_names(&run).iter().all(|n| n != "email-user"));
    smtp.nothing_more();
    server.run_flow(id, &sign_in("198.51.100.9", "e3")).await;
    assert!(
        smtp.next()["data"]
            .as_str()
            .unwrap()
            .contains("New sign-in from 198.51.100.9")
    );
}

#[tokio::test]
async fn http_request_posts_succeed_every_time() {
    // Regression: the host may close a request body stream as soon as its last byte is queued;
    // the SDK used to report that race as "connection closed while sending the request body".
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    let receiver = crate::receiver::Receiver::start().await;
    receiver.answer("/in", 200, "application/json", r#"{"ok": true}"#);
    let id = server
        .create_flow(webhook_flow(
            "post",
            json!([{"name": "post", "type": "action", "plugin": "http-request@0.1.0",
                    "input": {"method": "POST", "url": format!("{}/in", receiver.base),
                              "json": {"n": "{{trigger.body.n}}"}},
                    "allowedHosts": [receiver.base]}]),
        ))
        .await;
    let mut failures = Vec::new();
    for n in 0..150 {
        let run = server
            .run_flow(&id, &json!({"id": format!("e{n}"), "n": n}))
            .await;
        if run["status"] != "SUCCEEDED" {
            failures.push(step(&run, "post")["error"].clone());
        }
    }
    assert!(failures.is_empty(), "failed posts: {failures:?}");
    assert_eq!(receiver.to("/in").len(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_emailed_when_smtp_is_configured() {
    let smtp = SmtpSink::start();
    let server = smtp.server("hookflow <admin@hookflow.test>").await;
    let response = server
        .admin(reqwest::Method::POST, "/v1/projects/default/invitations")
        .json(&json!({"email": "new.person@example.com", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let invitation: Value = response.json().await.unwrap();
    assert_eq!(invitation["emailed"], true, "{invitation}");
    let message = smtp.next();
    assert_eq!(message["rcptTos"], json!(["new.person@example.com"]));
    let data = message["data"].as_str().unwrap();
    assert!(
        data.contains(invitation["token"].as_str().unwrap()),
        "{data}"
    );
    smtp.nothing_more();
}
