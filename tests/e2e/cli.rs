//! The server-talking CLI (`hookflow flow deploy|list|…`, `run`, `secret`, `destination`,
//! `plugin`, `audit --url`) run as the real binary against a real server, and the local
//! `flow run` inputs (`--payload -`, `--header`, `--secret`).

use crate::common::*;
use crate::receiver::Receiver;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What one CLI call did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", self.stdout))
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookflow"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env(
            "HOOKFLOW_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        // Only what the test passes decides the server and the token.
        .env_remove("HOOKFLOW_URL")
        .env_remove("HOOKFLOW_TOKEN")
        .env_remove("HOOKFLOW_ADMIN_TOKEN")
        .env("HOOKFLOW_DATA_DIR", "/nonexistent-hookflow-data");
    command
}

fn finish(out: Output) -> Ran {
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `hookflow ARGS --url BASE --token ADMIN_TOKEN` with `stdin`, off the test's runtime
/// (the receiver and the test share it).
async fn cli_with(server: &Server, args: &[&str], token: &str, stdin: Option<&str>) -> Ran {
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    full.extend([
        "--url".into(),
        server.base.clone(),
        "--token".into(),
        token.into(),
    ]);
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut child = command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hookflow");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        finish(child.wait_with_output().unwrap())
    })
    .await
    .unwrap()
}

async fn cli(server: &Server, args: &[&str]) -> Ran {
    cli_with(server, args, ADMIN_TOKEN, None).await
}

const FLOW_V1: &str = "name: cli-deployed\ntrigger:\n  type: webhook\nsteps:\n  - name: say\n    type: action\n    plugin: log@0.1.0\n    input:\n      message: first\n";
const FLOW_V2: &str = "name: cli-deployed\ntrigger:\n  type: webhook\nsteps:\n  - name: say\n    type: action\n    plugin: log@0.1.0\n    input:\n      message: second\n  - name: again\n    type: action\n    plugin: log@0.1.0\n    input:\n      message: more\n";

#[tokio::test]
async fn flows_deploy_twice_then_list_show_export_versions_diff_delete() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, FLOW_V1).unwrap();
    let path = file.to_str().unwrap();

    let first = cli(&server, &["flow", "deploy", path, "--json"])
        .await
        .json();
    assert_eq!(first["action"], "created", "{first}");
    assert_eq!(first["version"], 1);
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["webhookUrl"],
        format!("{}/v1/webhooks/{id}", server.base)
    );
    // The webhook it printed takes events.
    server.run_flow(&id, &json!({"n": 1})).await;

    std::fs::write(&file, FLOW_V2).unwrap();
    let second = cli(&server, &["flow", "deploy", path]).await;
    let text = second.ok();
    assert!(
        text.contains(&format!("updated flow {id}")) && text.contains("(version 2)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("webhook:    {}/v1/webhooks/{id}", server.base)),
        "{text}"
    );
    let stored = server.get_json(&format!("/v1/flows/{id}")).await;
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["definition"]["steps"][1]["name"], "again");

    let list = cli(&server, &["flow", "list"]).await;
    let table = list.ok();
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID ") && header.contains("NAME"),
        "{table}"
    );
    let row = table.lines().find(|l| l.contains(&id)).expect("flow row");
    // Columns are aligned: NAME starts where the header's NAME does.
    assert_eq!(row.find("cli-deployed"), header.find("NAME"), "{table}");
    let listed = cli(&server, &["flow", "list", "--json"]).await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id.as_str())
    );

    let show = cli(&server, &["flow", "show", &id]).await;
    let shown = show.ok();
    assert!(
        shown.contains("version:  2") && shown.contains("again"),
        "{shown}"
    );

    let export = cli(&server, &["flow", "export", &id]).await;
    assert!(export.ok().contains("message: second"), "{}", export.stdout);
    let old = cli(
        &server,
        &["flow", "export", &id, "--version", "1", "--json"],
    )
    .await
    .json();
    assert_eq!(old["steps"][0]["input"]["message"], "first");

    let versions = cli(&server, &["flow", "versions", &id, "--json"])
        .await
        .json();
    let numbers: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    let diff = cli(&server, &["flow", "diff", &id, "1", "2"]).await;
    let d = diff.ok();
    assert!(
        d.starts_with(&format!("--- {id} version 1\n+++ {id} version 2\n@@ ")),
        "{d}"
    );
    assert!(
        d.contains("-    message: first\n+    message: second\n"),
        "{d}"
    );
    assert!(d.contains("+  name: again\n"), "{d}");
    assert!(!d.contains("-  name: say"), "{d}");

    cli(&server, &["flow", "delete", &id]).await.ok();
    let gone = cli(&server, &["flow", "show", &id]).await;
    assert_eq!(gone.code, Some(2), "{}", gone.stderr);
    assert_eq!(gone.stderr.lines().count(), 1, "{}", gone.stderr);
    assert!(
        gone.stderr.contains("not found") && gone.stderr.contains("404"),
        "{}",
        gone.stderr
    );

    // A flow file with problems is refused here, naming them, and nothing is sent.
    std::fs::write(
        &file,
        "name: broken\ntrigger: {type: webhook}\nsteps:\n  - name: x\n    type: action\n",
    )
    .unwrap();
    let bad = cli(&server, &["flow", "deploy", path]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("steps[0]"), "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
}

#[tokio::test]
async fn errors_are_one_line_with_exit_2_and_an_unreachable_server_is_exit_1() {
    let server = Server::start().await;
    // A 4xx: the problem's detail.
    let bad = cli(&server, &["run", "list", "--status", "SOMETIMES"]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("status"), "{}", bad.stderr);
    // A wrong token: exit 2 pointing at the token.
    let denied = cli_with(&server, &["flow", "list"], "not-the-token", None).await;
    assert_eq!(denied.code, Some(2), "{}", denied.stderr);
    assert_eq!(denied.stderr.lines().count(), 1, "{}", denied.stderr);
    assert!(denied.stderr.contains("token"), "{}", denied.stderr);
    assert!(
        !denied.stderr.contains("not-the-token"),
        "{}",
        denied.stderr
    );
    // Nobody listening: exit 1, one line naming the URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        url
    };
    let out = finish(
        command(&["flow", "list", "--url", &closed, "--token", "t"])
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&closed), "{}", out.stderr);
    // https:// is spoken (here to a plain-HTTP server, so the TLS handshake fails): exit 1,
    // one line naming the URL.
    let tls = server.base.replace("http://", "https://");
    let out = finish(
        command(&["flow", "list", "--url", &tls, "--token", "t"])
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&tls), "{}", out.stderr);
    // Without --token or a token variable: the admin token file in HOOKFLOW_DATA_DIR, as
    // `serve` writes it.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("admin-token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    let from_file = finish(
        command(&["flow", "list", "--json", "--url", &server.base])
            .env("HOOKFLOW_DATA_DIR", data.path())
            .output()
            .unwrap(),
    );
    assert_eq!(from_file.json(), json!([]));
    let none = finish(
        command(&["flow", "list", "--url", &server.base])
            .output()
            .unwrap(),
    );
    assert_eq!(none.code, Some(2), "{}", none.stderr);
    assert!(none.stderr.contains("HOOKFLOW_TOKEN"), "{}", none.stderr);
    // The token from the environment (HOOKFLOW_TOKEN) when --token is not given.
    let listed = finish(
        command(&["flow", "list", "--json", "--url", &server.base])
            .env("HOOKFLOW_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap(),
    );
    assert_eq!(listed.json(), json!([]));
}

#[tokio::test]
async fn runs_list_show_retry_and_follow_sees_a_new_run() {
    let server = Server::start().await;
    let flow = server
        .create_flow(webhook_flow(
            "runs",
            json!([hostile_step("boom", json!({"mode": "trap"}))]),
        ))
        .await;
    let failed = server.run_flow(&flow, &json!({"n": 1})).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let run_id = failed["id"].as_str().unwrap().to_string();

    let listed = cli(&server, &["run", "list", "--flow", &flow, "--json"])
        .await
        .json();
    assert_eq!(listed[0]["id"], run_id.as_str());
    let table = cli(&server, &["run", "list", "--status", "failed"]).await;
    assert!(
        table
            .ok()
            .lines()
            .any(|l| l.contains(&run_id) && l.contains("FAILED")),
        "{}",
        table.stdout
    );
    let none = cli(&server, &["run", "list", "--status", "SUCCEEDED", "--json"])
        .await
        .json();
    assert_eq!(none, json!([]));

    let show = cli(&server, &["run", "show", &run_id]).await;
    let shown = show.ok();
    assert!(
        shown.contains("status:   FAILED") && shown.contains("boom"),
        "{shown}"
    );
    let json = cli(&server, &["run", "show", &run_id, "--json"])
        .await
        .json();
    assert_eq!(json["steps"][0]["name"], "boom");

    let retry = cli(&server, &["run", "retry", &run_id, "--json"])
        .await
        .json();
    assert_eq!(retry["runId"], run_id.as_str());
    server.wait_run(&run_id).await;

    // --follow prints the existing runs, then a new one as it arrives; stopped by a kill.
    let mut child = command(&[
        "run",
        "list",
        "--flow",
        &flow,
        "--follow",
        "--json",
        "--url",
        &server.base,
        "--token",
        ADMIN_TOKEN,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("first line");
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap()["id"],
        run_id.as_str()
    );
    let new_run = server.trigger(&flow, &json!({"n": 2})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = false;
    while Instant::now() < deadline && !seen {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            let run: Value = serde_json::from_str(&line).unwrap();
            seen = run["id"] == new_run.as_str();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "--follow did not print run {new_run}");
}

#[tokio::test]
async fn secrets_set_from_stdin_list_and_delete_never_print_the_value() {
    let server = Server::start().await;
    let value = "s3cr3t-value-from-stdin";
    let set = cli_with(
        &server,
        &["secret", "set", "SLACK_URL"],
        ADMIN_TOKEN,
        Some(&format!("{value}\n")),
    )
    .await;
    assert!(
        set.ok().contains("created secret SLACK_URL"),
        "{}",
        set.stdout
    );
    assert!(!set.stdout.contains(value) && !set.stderr.contains(value));
    let again = cli_with(
        &server,
        &["secret", "set", "SLACK_URL"],
        ADMIN_TOKEN,
        Some(value),
    )
    .await;
    assert!(again.ok().contains("updated secret SLACK_URL"));

    // The value reached the server as sent (without the newline): a step granted it sees it.
    let flow = server
        .create_flow(webhook_flow(
            "uses-secret",
            json!([{"name": "t", "type": "action", "plugin": "transform@0.1.0",
                    "input": {"data": {"same": "{{secrets.SLACK_URL}}"}, "jq": ".same == \"s3cr3t-value-from-stdin\""},
                    "secrets": ["SLACK_URL"]}]),
        ))
        .await;
    let run = server.run_flow(&flow, &json!({})).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(step(&run, "t")["output"], json!(true), "{run}");

    let list = cli(&server, &["secret", "list"]).await;
    assert!(list.ok().contains("SLACK_URL"), "{}", list.stdout);
    assert!(!list.stdout.contains(value));
    let names = cli(&server, &["secret", "list", "--json"]).await.json();
    assert_eq!(names[0]["name"], "SLACK_URL");
    assert!(!names.to_string().contains(value));

    let empty = cli_with(&server, &["secret", "set", "EMPTY"], ADMIN_TOKEN, Some("")).await;
    assert_eq!(empty.code, Some(2), "{}", empty.stderr);
    let bad = cli_with(
        &server,
        &["secret", "set", "no spaces"],
        ADMIN_TOKEN,
        Some(value),
    )
    .await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(!bad.stderr.contains(value), "{}", bad.stderr);

    cli(&server, &["secret", "delete", "SLACK_URL"]).await.ok();
    assert_eq!(
        cli(&server, &["secret", "list", "--json"]).await.json(),
        json!([])
    );
    let twice = cli(&server, &["secret", "delete", "SLACK_URL"]).await;
    assert_eq!(twice.code, Some(2), "{}", twice.stderr);
}

#[tokio::test]
async fn destinations_create_list_test_deliveries_redeliver() {
    let server = Server::start_with(Options {
        hostile: false,
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
    })
    .await;
    let rx = Receiver::start().await;
    let endpoint = format!("{}/audit", rx.base);
    let created = cli(
        &server,
        &[
            "destination",
            "create",
            &endpoint,
            "--name",
            "siem",
            "--event",
            "flow.created",
            "--header",
            "X-Team: platform",
            "--json",
        ],
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        created["signingSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let list = cli(&server, &["destination", "list"]).await;
    let listed = list.ok();
    assert!(
        listed.lines().any(|l| l.contains(&id)
            && l.contains("siem")
            && l.contains("flow.created")
            && l.contains("enabled")),
        "{listed}"
    );
    // The secret is not shown again.
    assert!(!listed.contains(created["signingSecret"].as_str().unwrap()));

    let test = cli(
        &server,
        &["destination", "test", &id, "--event", "flow.created"],
    )
    .await;
    assert!(test.ok().contains("answered 200"), "{}", test.stdout);
    let sent = rx.to("/audit");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json()["action"], "flow.created");
    assert_eq!(sent[0].headers["x-team"], "platform");

    // A real event, delivered and then redelivered by its id.
    server
        .create_flow(webhook_flow("streamed", json!([])))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.to("/audit").len() < 2 {
        assert!(Instant::now() < deadline, "no delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = rx.to("/audit")[1].json();
    // The attempt is recorded once the worker has written it; its eventId is the audit event's.
    let event_id = loop {
        let d = cli(&server, &["destination", "deliveries", &id, "--json"])
            .await
            .json();
        if let Some(attempt) = d.as_array().unwrap().first() {
            assert_eq!(attempt["statusCode"], 200, "{d}");
            break attempt["eventId"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no delivery recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let table = cli(&server, &["destination", "deliveries", &id]).await;
    let rows = table.ok();
    assert!(rows.starts_with("CREATED"), "{rows}");
    assert!(
        rows.lines()
            .any(|l| l.contains(&event_id) && l.contains(" 200 ")),
        "{rows}"
    );

    let redo = cli(
        &server,
        &["destination", "redeliver", &id, "--event-id", &event_id],
    )
    .await;
    assert!(redo.ok().contains("queued 1 event"), "{}", redo.stdout);
    while rx.to("/audit").len() < 3 {
        assert!(Instant::now() < deadline, "no redelivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.to("/audit")[2].json()["id"], delivered["id"]);

    // A test send that fails exits 1 and says what happened.
    rx.answer("/down", 503, "text/plain", "nope");
    let down = cli(
        &server,
        &["destination", "test", "--to", &format!("{}/down", rx.base)],
    )
    .await;
    assert_eq!(down.code, Some(1), "{}", down.stdout);
    assert!(down.stdout.contains("503"), "{}", down.stdout);
}

#[tokio::test]
async fn plugins_list_and_show() {
    let server = Server::start().await;
    let list = cli(&server, &["plugin", "list"]).await;
    let text = list.ok();
    assert!(text.lines().next().unwrap().starts_with("PLUGIN"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("log@0.1.0") && l.contains("built-in")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("hostile@0.1.0") && l.contains("installed")),
        "{text}"
    );
    let all = cli(&server, &["plugin", "list", "--json"]).await.json();
    assert!(all.as_array().unwrap().len() >= 13);

    let show = cli(&server, &["plugin", "show", "slack@0.1.0"]).await;
    let shown = show.ok();
    assert!(
        shown.contains("side effects: yes") && shown.contains("INPUT"),
        "{shown}"
    );
    let one = cli(&server, &["plugin", "show", "log@0.1.0", "--json"])
        .await
        .json();
    assert_eq!(one["name"], "log");
    let missing = cli(&server, &["plugin", "show", "nope@1.0.0"]).await;
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("not installed"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn audit_list_export_and_verify_through_the_server() {
    let mut server = Server::start().await;
    let flow = server.create_flow(webhook_flow("audited", json!([]))).await;
    server.run_flow(&flow, &json!({})).await;

    let list = cli(&server, &["audit", "list", "--action", "flow.created"]).await;
    let text = list.ok();
    assert!(
        text.lines().next().unwrap().starts_with("CREATED"),
        "{text}"
    );
    assert!(text.contains("flow.created"), "{text}");
    assert!(!text.contains("flow.run.started"), "{text}");
    let events = cli(&server, &["audit", "list", "--json"]).await.json();
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"flow.run.finished") && actions.contains(&"flow.created"),
        "{actions:?}"
    );

    let export = cli(&server, &["audit", "export", "--format", "jsonl"]).await;
    let lines: Vec<Value> = export
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.as_array().unwrap().len());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("audit.csv");
    let to_file = cli(
        &server,
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "-o",
            csv.to_str().unwrap(),
        ],
    )
    .await;
    to_file.ok();
    assert!(
        to_file
            .stderr
            .contains(&format!("exported {} events", lines.len())),
        "{}",
        to_file.stderr
    );
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .contains("flow.created")
    );

    let verify = cli(&server, &["audit", "verify"]).await;
    assert!(
        verify.ok().starts_with("audit chain intact: "),
        "{}",
        verify.stdout
    );
    let verdict = cli(&server, &["audit", "verify", "--json"]).await.json();
    assert_eq!(verdict["intact"], true);
    assert!(
        verdict["events"].as_u64().unwrap() >= lines.len() as u64,
        "{verdict}"
    );

    // Wrong token through the audit path too.
    let denied = cli_with(&server, &["audit", "verify"], "wrong", None).await;
    assert_eq!(denied.code, Some(2));
    assert!(denied.stderr.contains("token"), "{}", denied.stderr);

    // An event edited behind the server's back: the server's verdict, exit 1, names it.
    server.kill9();
    edit_database(
        &server.database_url(),
        "UPDATE audit_events SET body = replace(body, 'audited', 'edited') WHERE action = 'flow.created'",
    )
    .await;
    server.restart();
    let broken = cli(&server, &["audit", "verify"]).await;
    assert_eq!(broken.code, Some(1), "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.contains("BROKEN"), "{}", broken.stderr);
    let verdict = cli(&server, &["audit", "verify", "--json"]).await;
    assert_eq!(verdict.code, Some(1));
    let verdict: Value = serde_json::from_str(&verdict.stdout).unwrap();
    assert_eq!(verdict["intact"], false, "{verdict}");
}

/// Runs one statement on the server's database behind its back.
async fn edit_database(db: &str, statement: &str) {
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(db).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let conn = rusqlite::Connection::open(db.trim_start_matches("sqlite://")).unwrap();
        assert!(conn.execute(statement, []).unwrap() > 0, "{statement}");
    }
}

#[test]
fn local_run_reads_the_payload_from_stdin_with_headers_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        "name: local\ntrigger: {type: webhook}\nsteps:\n  - name: t\n    type: action\n    plugin: transform@0.1.0\n    secrets: [API_TOKEN]\n    input:\n      data:\n        user: \"{{trigger.body.user}}\"\n        kind: \"{{trigger.headers.x-event-kind}}\"\n        token: \"{{secrets.API_TOKEN}}\"\n      jq: \"{user, kind, tokenOk: ((.token | length) == 13 and (.token | startswith(\\\"tok-\\\")))}\"\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "flow",
            "run",
            flow.to_str().unwrap(),
            "--payload",
            "-",
            "--json",
        ];
        args.extend_from_slice(extra);
        let mut child = command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"user": "ada"}"#)
            .unwrap();
        finish(child.wait_with_output().unwrap())
    };
    let out = run(&[
        "--header",
        "X-Event-Kind: login",
        "--secret",
        "API_TOKEN=tok-123456789",
    ]);
    let result = out.json();
    assert_eq!(result["status"], "SUCCEEDED", "{result}");
    assert_eq!(
        result["steps"][0]["output"],
        json!({"user": "ada", "kind": "login", "tokenOk": true}),
        "{result}"
    );
    // The secret is redacted in the trace.
    assert!(!out.stdout.contains("tok-123456789"), "{}", out.stdout);

    // From a file as well; without it the secret is absent.
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, "# local secrets\nAPI_TOKEN=tok-123456789\n").unwrap();
    let from_file = run(&["--secrets-file", secrets.to_str().unwrap()]).json();
    assert_eq!(
        from_file["steps"][0]["output"]["tokenOk"], true,
        "{from_file}"
    );
    let without = run(&[]).json();
    assert_ne!(without["steps"][0]["output"]["tokenOk"], true, "{without}");
    let bad = run(&["--header", "no-colon"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

#[test]
fn validate_reads_stdin_and_takes_plugins_that_are_not_installed() {
    let flow = "name: uses-hostile\ntrigger: {type: webhook}\nsteps:\n  - name: h\n    type: action\n    plugin: hostile@0.1.0\n    input: {mode: ok}\n";
    let validate = |extra: &[&str]| {
        let mut args = vec!["flow", "validate", "-"];
        args.extend_from_slice(extra);
        let mut child = command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(flow.as_bytes())
            .unwrap();
        finish(child.wait_with_output().unwrap())
    };
    let without = validate(&[]);
    assert_eq!(without.code, Some(2), "{}", without.stdout);
    assert!(
        without.stderr.contains("hostile@0.1.0"),
        "{}",
        without.stderr
    );
    let hostile = hostile_plugin();
    let with = validate(&["--plugin", hostile.to_str().unwrap()]);
    assert!(
        with.ok().contains("valid flow \"uses-hostile\""),
        "{}",
        with.stdout
    );
}

#[tokio::test]
async fn flow_lifecycle_list_show_draft_test_publish_disable_and_export_many() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, FLOW_V1).unwrap();
    let id = cli(
        &server,
        &["flow", "deploy", file.to_str().unwrap(), "--json"],
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server
        .admin(reqwest::Method::PUT, &format!("/v1/flows/{id}?draft=true"))
        .header("content-type", "application/yaml")
        .body(FLOW_V2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    let table = cli(&server, &["flow", "list"]).await;
    let table = table.ok();
    let header = table.lines().next().unwrap();
    let row = table.lines().find(|l| l.contains(&id)).expect("flow row");
    let cell = |name: &str| {
        let at = header.find(name).unwrap();
        row[at..].split_whitespace().next().unwrap().to_string()
    };
    assert_eq!(
        (cell("ENABLED"), cell("PUBLISHED"), cell("DRAFT")),
        ("yes".into(), "1".into(), "2".into()),
        "{table}"
    );
    let shown = cli(&server, &["flow", "show", &id]).await;
    assert!(
        shown.ok().contains("draft:    version 2 pending"),
        "{}",
        shown.stdout
    );

    // The draft test-runs before it is published; the published version by default.
    let draft = cli(
        &server,
        &[
            "flow",
            "test",
            &id,
            "--payload",
            file_with(&dir, "{}"),
            "--draft",
            "--json",
        ],
    )
    .await;
    let draft = draft.json();
    assert_eq!(draft["flowVersion"], 2, "{draft}");
    assert_eq!(draft["steps"].as_array().unwrap().len(), 2, "{draft}");
    let published = cli(
        &server,
        &["flow", "test", &id, "--payload", file_with(&dir, "{}")],
    )
    .await;
    assert!(
        published
            .ok()
            .starts_with(&format!("flow {id} version 1\n")),
        "{}",
        published.stdout
    );

    let published = cli(&server, &["flow", "publish", &id]).await;
    assert!(published.ok().contains("version 2 published, enabled"));
    let disabled = cli(&server, &["flow", "disable", &id]).await;
    assert!(disabled.ok().contains("disabled"), "{}", disabled.stdout);
    let listed = cli(&server, &["flow", "list", "--json"]).await.json();
    let item = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&item["enabled"], &item["draftVersion"]),
        (&json!(false), &Value::Null)
    );
    let none = cli(&server, &["flow", "show", &id]).await;
    assert!(none.ok().contains("enabled:  no"), "{}", none.stdout);
    assert!(
        none.stdout.contains("draft:    none pending"),
        "{}",
        none.stdout
    );
    cli(&server, &["flow", "enable", &id]).await.ok();

    // Several flows: one file each in the output directory; a file name is needed.
    let other = server
        .create_flow(webhook_flow("second", json!([log_step("x", "y")])))
        .await;
    let out = dir.path().join("export");
    let many = cli(
        &server,
        &["flow", "export", &id, &other, "-o", out.to_str().unwrap()],
    )
    .await;
    many.ok();
    assert!(many.stderr.contains("exported 2 flows"), "{}", many.stderr);
    assert!(
        std::fs::read_to_string(out.join(format!("{id}.yaml")))
            .unwrap()
            .contains("message: second")
    );
    assert!(out.join(format!("{other}.yaml")).exists());
    let all = cli(
        &server,
        &[
            "flow",
            "export",
            "--all",
            "--json",
            "-q",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    all.ok();
    assert_eq!(all.stderr, "", "quiet");
    assert!(out.join(format!("{other}.json")).exists());
    let refused = cli(&server, &["flow", "export", &id, &other]).await;
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("--output"), "{}", refused.stderr);
}

/// Writes `text` into a file in `dir` and returns its path (leaked for the CLI arguments).
fn file_with(dir: &tempfile::TempDir, text: &str) -> &'static str {
    let path = dir.path().join(format!("{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, text).unwrap();
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

#[tokio::test]
async fn plugin_install_shows_upload_progress_and_remove_takes_a_version_out() {
    let server = Server::start().await;
    // greet@1.0.0 padded past 4 MiB with a custom section: large enough for progress off a
    // terminal, and bytes no other test installs.
    let greet = std::fs::read(hookflow::builtins::GREET_PLUGIN_PATHS[0]).unwrap();
    let mut padding = uuid::Uuid::new_v4().as_bytes().to_vec();
    padding.resize(5 << 20, b'.');
    let big = crate::plugins::with_custom_section(&greet, &padding);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("greet.wasm");
    std::fs::write(&file, &big).unwrap();

    let quiet = cli(
        &server,
        &["plugin", "install", file.to_str().unwrap(), "-q"],
    )
    .await;
    assert!(
        quiet.ok().contains("installed greet@1.0.0"),
        "{}",
        quiet.stdout
    );
    assert_eq!(quiet.stderr, "", "quiet");
    let removed = cli(&server, &["plugin", "remove", "greet@1.0.0"]).await;
    assert_eq!(removed.ok().trim(), "removed greet@1.0.0");

    let loud = cli(&server, &["plugin", "install", file.to_str().unwrap()]).await;
    loud.ok();
    let lines: Vec<&str> = loud.stderr.lines().collect();
    assert!(lines.len() >= 10, "a line per tenth: {}", loud.stderr);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("uploading ") && l.contains(" MiB (")),
        "{}",
        loud.stderr
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("(100%); the server compiles it now"),
        "{}",
        loud.stderr
    );

    // A version a flow uses stays, and the refusal names the flow; built-ins always stay.
    let id = server
        .create_flow(webhook_flow(
            "greets",
            json!([{"name": "greet", "type": "action", "plugin": "greet@1.0.0",
                    "input": {"who": "x"}}]),
        ))
        .await;
    let used = cli(&server, &["plugin", "remove", "greet@1.0.0"]).await;
    assert_eq!(used.code, Some(2), "{}", used.stderr);
    assert!(used.stderr.contains(&id), "{}", used.stderr);
    assert_eq!(used.stderr.trim().lines().count(), 1, "{}", used.stderr);
    let builtin = cli(&server, &["plugin", "remove", "log@0.1.0"]).await;
    assert_eq!(builtin.code, Some(2));
    assert!(builtin.stderr.contains("built-in"), "{}", builtin.stderr);
    let bare = cli(&server, &["plugin", "remove", "greet"]).await;
    assert_eq!(bare.code, Some(2));
    assert!(bare.stderr.contains("NAME@VERSION"), "{}", bare.stderr);
}

#[test]
fn replay_shows_progress_off_a_terminal_only_for_long_work_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(&flow, "name: empty\ntrigger:\n  type: webhook\nsteps: []\n").unwrap();
    let events = dir.path().join("events.jsonl");
    let lines: String = (0..10_000).map(|i| format!("{{\"id\": {i}}}\n")).collect();
    std::fs::write(&events, lines).unwrap();
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "flow",
            "replay",
            flow.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ];
        args.extend(extra);
        finish(command(&args).output().unwrap())
    };
    let loud = replay(&[]);
    loud.ok();
    let progress: Vec<&str> = loud.stderr.lines().collect();
    assert_eq!(progress.len(), 10, "{}", loud.stderr);
    assert_eq!(progress[0], "replaying: 1000/10000 events (10%), 0 alerts");
    assert_eq!(
        progress[9],
        "replaying: 10000/10000 events (100%), 0 alerts"
    );
    let quiet = replay(&["--quiet"]);
    quiet.ok();
    assert_eq!(quiet.stderr, "");
    std::fs::write(&events, "{\"id\": 1}\n").unwrap();
    let short = replay(&[]);
    short.ok();
    assert_eq!(short.stderr, "", "short work shows nothing off a terminal");
}

/// `flow replay ID` reads the flow from a server with the same client and token rules as every
/// other server command (`--url`, `--token`, `HOOKFLOW_TOKEN`...): it once had its own client
/// that took only `HOOKFLOW_ADMIN_TOKEN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_a_stored_flow_with_the_shared_server_options() {
    let server = Server::start().await;
    let flow_id = server
        .create_flow(json!({"name": "replayed", "trigger": {"type": "webhook"}, "steps": []}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    let events = events.to_str().unwrap();
    let replayed = cli_with(
        &server,
        &["flow", "replay", &flow_id, "--events", events, "--json"],
        ADMIN_TOKEN,
        None,
    )
    .await;
    let report: Value = serde_json::from_str(replayed.ok()).unwrap();
    assert_eq!(report["events"], 2);

    let missing = cli_with(
        &server,
        &["flow", "replay", "no-such-flow", "--events", events],
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert_eq!(
        missing.stderr.trim().lines().count(),
        1,
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("not found"), "{}", missing.stderr);

    // Neither a file nor a server to ask: one line saying both.
    let nowhere = finish(
        command(&["flow", "replay", "no-such-file.yaml", "--events", events])
            .output()
            .unwrap(),
    );
    assert_eq!(nowhere.code, Some(2), "{}", nowhere.stderr);
    assert!(
        nowhere.stderr.contains("no-such-file.yaml is not a file"),
        "{}",
        nowhere.stderr
    );
}
