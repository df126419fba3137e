//! Detections over time: `threshold` steps live (one alert per crossing, suppression,
//! redeliveries, late and out-of-order events, several processes on PostgreSQL), the calendar
//! operators, and replay of the detection templates' sample sequences through the API and the
//! CLI.

use crate::common::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;

fn handlers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates/handlers")
}

/// The sample sequence shipped with a template, one event per element (array lines split).
fn sequence(template: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(handlers_dir().join(format!("{template}.events.jsonl")))
        .expect("sequence file");
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line).expect("JSON line") {
            Value::Array(items) => events.extend(items),
            event => events.push(event),
        }
    }
    events
}

fn id_of(event: &Value) -> String {
    event["id"]
        .as_str()
        .or_else(|| event["log_id"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn replay(server: &Server, flow_id: &str, events: &[Value]) -> Value {
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{flow_id}/replay"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn alerts(report: &Value) -> &Vec<Value> {
    report["alerts"].as_array().expect("alerts")
}

/// Each threshold template on its sequence: exactly one alert, for the expected key and count,
/// listing the contributing events; and nothing when the sequence is one event short.
#[tokio::test]
async fn every_threshold_template_fires_exactly_once_and_not_one_event_short() {
    let server = Server::start().await;
    // (template, alerting key, count, the crossing key's events to drop for "one short")
    let cases: [(&str, &str, u64, &[&str]); 5] = [
        (
            "brute-force-sign-ins",
            "mallory@example.com|203.0.113.9",
            5,
            &[
                "ap-user.signed.in-mallory-4",
                "ap-user.signed.in-mallory-5",
                "ap-user.signed.in-mallory-late",
            ],
        ),
        (
            "bulk-deletions",
            "dave@example.com",
            11,
            &["ap-connection.deleted-dave-9"],
        ),
        (
            "gitlab-mass-downloads",
            "42",
            10,
            &["gl-u42-9", "gl-u42-again-9"],
        ),
        (
            "auth0-failed-logins",
            "jane.doe@example.com|198.51.100.77",
            5,
            &[],
        ),
        ("auth0-user-deletion-burst", "acme", 10, &["evt_del_acme_9"]),
    ];
    for (template, key, count, drop) in cases {
        let flow_id = flow_from_template(&server, template).await;
        let events = sequence(template);
        let report = replay(&server, &flow_id, &events).await;
        assert_eq!(report["events"], events.len(), "{template}");
        let found = alerts(&report);
        assert_eq!(found.len(), 1, "{template}: {report:#}");
        let alert = &found[0];
        assert_eq!(alert["key"], key, "{template}");
        assert_eq!(alert["count"], count, "{template}");
        assert!(alert["step"].as_str().unwrap().starts_with("count-"));
        let ids = alert["eventIds"].as_array().unwrap();
        assert!(ids.len() as u64 >= count, "{template}: {alert}");
        // The alert's notification is what the flow would have sent (skipped in a replay).
        let actions = report["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 1, "{template}: {report:#}");
        assert_eq!(actions[0]["step"], "tell-slack");
        assert_eq!(actions[0]["plugin"], "slack@0.1.0");

        // One event short: the crossing key's last events removed.
        let short: Vec<Value> = if template == "auth0-failed-logins" {
            // Jane's five failures: drop the last one (by time).
            let mut jane: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    e["data"]["user_name"] == "jane.doe@example.com" && e["data"]["type"] == "fp"
                })
                .collect();
            jane.sort_by_key(|e| e["data"]["date"].as_str().unwrap().to_owned());
            let last = id_of(jane.last().unwrap());
            events
                .iter()
                .filter(|e| id_of(e) != last)
                .cloned()
                .collect()
        } else {
            let drop: HashSet<&str> = drop.iter().copied().collect();
            events
                .iter()
                .filter(|e| !drop.contains(id_of(e).as_str()))
                .cloned()
                .collect()
        };
        assert!(short.len() < events.len(), "{template}");
        let report = replay(&server, &flow_id, &short).await;
        assert!(
            alerts(&report).is_empty(),
            "{template} one short: {report:#}"
        );
    }
}

/// The two rules without a window: business hours across the daylight-saving change (Europe/
/// Berlin), and admin roles granted; replay lists what each would have sent.
#[tokio::test]
async fn off_hours_and_admin_role_templates_act_on_exactly_their_events() {
    let server = Server::start().await;
    for (template, expected) in [
        (
            "off-hours-activity",
            vec![
                "ap-flow.updated-weekday-evening",
                "ap-flow.deleted-saturday",
                "ap-connection.deleted-before-dst",
            ],
        ),
        (
            "admin-role-granted",
            vec![
                "ap-project.role.updated-granted",
                "ap-project.role.created-created",
            ],
        ),
    ] {
        let flow_id = flow_from_template(&server, template).await;
        let report = replay(&server, &flow_id, &sequence(template)).await;
        let acted: Vec<&str> = report["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["eventId"].as_str().unwrap())
            .collect();
        assert_eq!(acted, expected, "{template}: {report:#}");
        assert!(alerts(&report).is_empty());
    }
}

/// A flow counting failed sign-ins live, alerting a loopback receiver.
fn live_detection(receiver: &Receiver, threshold: u32) -> Value {
    webhook_flow(
        "live brute force",
        json!([{
            "name": "count", "type": "threshold",
            "groupBy": "{{trigger.body.userEmail}}|{{trigger.body.ip}}",
            "window": "1h", "threshold": threshold,
            "crossed": [{
                "name": "alert", "type": "action", "plugin": "http-request@0.1.0",
                "input": {"method": "POST", "url": format!("{}/alert", receiver.base),
                          "json": {"key": "{{steps.count.output.key}}",
                                   "count": "{{steps.count.output.count}}",
                                   "events": "{{steps.count.output.eventIds}}",
                                   "suppressed": "{{steps.count.output.suppressedSinceLastAlert}}"}},
                "allowedHosts": [receiver.base]
            }]
        }]),
    )
}

/// The start of the hour live tests send events in: recent, so nothing is late.
static BASE: std::sync::LazyLock<chrono::DateTime<chrono::Utc>> = std::sync::LazyLock::new(|| {
    let now = chrono::Utc::now() - chrono::Duration::minutes(90);
    now - chrono::Duration::seconds(i64::from(chrono::Timelike::second(&now)))
        - chrono::Duration::nanoseconds(i64::from(chrono::Timelike::nanosecond(&now)))
});

fn at_minute(minute: u32) -> String {
    (*BASE + chrono::Duration::minutes(i64::from(minute)))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A server allowed to call loopback, a receiver answering `/alert`, and a stored
/// [`live_detection`] flow with `threshold`.
async fn alerting_flow(threshold: u32) -> (Server, Receiver, String) {
    let server = Server::start_with(Options {
        env: vec![("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1".into())],
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.answer("/alert", 200, "application/json", "{}");
    let flow_id = server
        .create_flow(live_detection(&receiver, threshold))
        .await;
    (server, receiver, flow_id)
}

fn failure(id: &str, minute: u32, user: &str) -> Value {
    json!({"id": id, "action": "user.signed.in", "userEmail": user, "ip": "203.0.113.9",
           "created": at_minute(minute), "data": {"success": false}})
}

#[tokio::test]
async fn a_live_threshold_alerts_once_per_crossing_despite_redeliveries_and_late_events() {
    let (server, receiver, flow_id) = alerting_flow(5).await;
    // Four failures (the third redelivered): nothing yet.
    for (id, minute) in [("a1", 0), ("a2", 5), ("a3", 10)] {
        let run = server
            .run_flow(&flow_id, &failure(id, minute, "mallory@example.com"))
            .await;
        assert_eq!(run["status"], "SUCCEEDED", "{run:#}");
        assert_eq!(step(&run, "count")["output"]["crossed"], false);
    }
    let again = server
        .post_event(&flow_id, &failure("a3", 10, "mallory@example.com"))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a redelivery is a duplicate at intake"
    );
    let run = server
        .run_flow(&flow_id, &failure("a4", 15, "mallory@example.com"))
        .await;
    assert_eq!(step(&run, "count")["output"]["count"], 4);
    // The fifth arrives late and out of order (it happened first): it crosses the line.
    let run = server
        .run_flow(&flow_id, &failure("a0", 1, "mallory@example.com"))
        .await;
    let output = &step(&run, "count")["output"];
    assert_eq!(output["crossed"], true, "{run:#}");
    assert_eq!(output["count"], 5);
    assert_eq!(output["eventIds"], json!(["a1", "a0", "a2", "a3", "a4"]));
    assert_eq!(output["windowStart"], at_minute(0));
    assert_eq!(step(&run, "alert")["status"], "SUCCEEDED");
    // The attack goes on: quiet for the window, counted as suppressed.
    for (id, minute) in [("a5", 20), ("a6", 25)] {
        let run = server
            .run_flow(&flow_id, &failure(id, minute, "mallory@example.com"))
            .await;
        let output = &step(&run, "count")["output"];
        assert_eq!(
            (output["crossed"].clone(), output["suppressed"].clone()),
            (json!(false), json!(true))
        );
    }
    // Another user's failures count apart.
    let run = server
        .run_flow(&flow_id, &failure("b1", 30, "bob@example.com"))
        .await;
    assert_eq!(step(&run, "count")["output"]["count"], 1);
    let alerts = receiver.to("/alert");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let body: Value = serde_json::from_str(&alerts[0].body).unwrap();
    assert_eq!(body["key"], "mallory@example.com|203.0.113.9");
    // An event from hours before its arrival window is late: reported, never counted.
    let run = server
        .run_flow(
            &flow_id,
            &json!({"id": "old", "action": "user.signed.in", "userEmail": "bob@example.com",
                                    "ip": "203.0.113.9", "created": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(step(&run, "count")["output"]["late"], true, "{run:#}");
    let metrics = server
        .admin(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookflow_detection_late_events_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn test_runs_count_in_a_scratch_window_and_leave_live_state_alone() {
    let (server, receiver, flow_id) = alerting_flow(2).await;
    for _ in 0..3 {
        let (status, run) = test_run(
            &server,
            &flow_id,
            json!({"payload": failure("t1", 0, "t@example.com")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let count = step(&run, "count");
        assert_eq!(
            count["output"]["count"], 1,
            "each test run starts empty: {run:#}"
        );
        assert!(
            count["detail"]["note"]
                .as_str()
                .unwrap()
                .contains("scratch window")
        );
    }
    // Live state is untouched: the first live event counts one, the second crosses.
    let run = server
        .run_flow(&flow_id, &failure("t1", 0, "t@example.com"))
        .await;
    assert_eq!(step(&run, "count")["output"]["count"], 1);
    let run = server
        .run_flow(&flow_id, &failure("t2", 1, "t@example.com"))
        .await;
    assert_eq!(step(&run, "count")["output"]["crossed"], true);
    assert_eq!(receiver.to("/alert").len(), 1);
}

#[tokio::test]
async fn threshold_steps_and_calendar_conditions_are_refused_with_the_field_named() {
    let server = Server::start().await;
    let r = server
        .admin(Method::POST, "/v1/flows")
        .json(&webhook_flow(
            "bad",
            json!([{"name": "count", "type": "threshold", "groupBy": "{{trigger.body.ip}}",
                    "window": "1 hour", "threshold": 5},
                   {"name": "route", "type": "router", "branches": [{"name": "night", "when": [[
                       {"left": "{{trigger.body.created}}", "operator": "TIME_OF_DAY_IS_BETWEEN",
                        "right": "22:00-06:00", "timeZone": "Europe/Atlantis"}]]}]}]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    let text = body.to_string();
    assert!(text.contains("steps[0].window"), "{text}");
    assert!(
        text.contains("steps[1].branches[0].when[0][0].timeZone"),
        "{text}"
    );
}

/// A replay over what the server already stored: the flow's own live events in a time range,
/// and the engine's audit log.
#[tokio::test]
async fn replays_read_stored_events_and_the_audit_log() {
    let server = Server::start().await;
    let from = chrono::Utc::now().to_rfc3339();
    let flow_id = server
        .create_flow(webhook_flow(
            "count failures",
            json!([{"name": "count", "type": "threshold", "groupBy": "{{trigger.body.userEmail}}",
                    "window": "1h", "threshold": 3}]),
        ))
        .await;
    for i in 0..3 {
        server
            .run_flow(&flow_id, &failure(&format!("s{i}"), i, "s@example.com"))
            .await;
    }
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{flow_id}/replay"))
        .json(&json!({"source": "events", "from": from}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["events"], 3);
    assert_eq!(alerts(&report).len(), 1, "{report:#}");
    // The engine's own audit log: three flows created by the admin within the hour.
    let audit_flow = server
        .create_flow(webhook_flow(
            "flows created",
            json!([{"name": "route", "type": "router", "branches": [{"name": "created",
                "when": [[{"left": "{{trigger.body.action}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "flow.created"}]],
                "steps": [{"name": "count", "type": "threshold", "groupBy": "{{trigger.body.action}}",
                           "window": "1h", "threshold": 3}]}]}]),
        ))
        .await;
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{audit_flow}/replay"))
        .json(&json!({"source": "auditLog", "from": from}))
        .send()
        .await
        .unwrap();
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        alerts(&report).len(),
        0,
        "two flows created since {from}: {report:#}"
    );
    server.create_flow(webhook_flow("third", json!([]))).await;
    let r = server
        .admin(Method::POST, &format!("/v1/flows/{audit_flow}/replay"))
        .json(&json!({"source": "auditLog", "from": from}))
        .send()
        .await
        .unwrap();
    let report: Value = r.json().await.unwrap();
    assert_eq!(alerts(&report).len(), 1, "{report:#}");
    assert_eq!(alerts(&report)[0]["key"], "flow.created");
    // Bad requests name the field.
    for (body, field) in [
        (json!({"source": "events"}), "from"),
        (json!({"source": "events", "from": "yesterday"}), "from"),
        (json!({"events": [], "from": from}), "source"),
        (json!({}), "events"),
        (
            json!({"source": "auditLog", "from": from, "limit": 0}),
            "limit",
        ),
    ] {
        let r = server
            .admin(Method::POST, &format!("/v1/flows/{flow_id}/replay"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().starts_with(field),
            "{problem}"
        );
    }
}

/// `hookflow flow replay FILE --events FILE --json` without a server.
#[tokio::test]
async fn the_cli_replays_a_template_file() {
    let dir = handlers_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["flow", "replay"])
        .arg(dir.join("brute-force-sign-ins.yaml"))
        .arg("--events")
        .arg(dir.join("brute-force-sign-ins.events.jsonl"))
        .arg("--json")
        .env(
            "HOOKFLOW_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"], 18);
    assert_eq!(alerts(&report).len(), 1);
    assert_eq!(alerts(&report)[0]["key"], "mallory@example.com|203.0.113.9");
    // A bad events file: one line naming it, exit code 2.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "{\"id\": 1}\nnot json\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["flow", "replay"])
        .arg(dir.join("brute-force-sign-ins.yaml"))
        .arg("--events")
        .arg(bad.path())
        .env(
            "HOOKFLOW_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: not JSON"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Three processes on one PostgreSQL database receive one burst between them: one alert per
/// crossing key, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_postgres_alert_once_per_crossing() {
    let database = TestDatabase::create();
    let receiver = Receiver::start().await;
    receiver.answer("/alert", 200, "application/json", "{}");
    let start = || database.start_server(&[("HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS", "1")]);
    let servers = [start().await, start().await, start().await];
    let flow_id = servers[0].create_flow(live_detection(&receiver, 5)).await;
    let client = reqwest::Client::new();
    let mut sends = Vec::new();
    for i in 0..30u32 {
        for user in ["m1@example.com", "m2@example.com"] {
            let url = servers[(i as usize) % 3].url(&format!("/v1/webhooks/{flow_id}/sync"));
            let body = failure(&format!("{user}-{i}"), i, user);
            let client = client.clone();
            sends.push(tokio::spawn(async move {
                client.post(url).json(&body).send().await.unwrap().status()
            }));
        }
    }
    for send in sends {
        assert!(send.await.unwrap().is_success());
    }
    let alerts = receiver.to("/alert");
    let keys: Vec<String> = alerts
        .iter()
        .map(|a| {
            serde_json::from_str::<Value>(&a.body).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(alerts.len(), 2, "one per key: {keys:?}");
    assert!(keys.contains(&"m1@example.com|203.0.113.9".to_owned()));
    assert!(keys.contains(&"m2@example.com|203.0.113.9".to_owned()));
}
